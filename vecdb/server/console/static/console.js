// vecdb console: one vanilla script, no dependencies, no build step.
//
// Talks to the public REST API only (/v1/..., /whoami, /metrics). The API key lives in sessionStorage
// and travels as "Authorization: Bearer", never as a cookie (fetch runs with credentials: "omit").
// Every value from the server is rendered through textContent (el() below appends strings as text
// nodes); nothing is ever assigned to innerHTML.
"use strict";

(() => {
  const KEY_STORAGE = "vecdb.apiKey";
  const LIVE_INTERVAL_MS = 2000;
  const state = { key: sessionStorage.getItem(KEY_STORAGE) || "", me: null };

  // ---- DOM helpers: strings become text nodes, never markup ----

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function collectionHref(name) {
    return "/console/collections/" + encodeURIComponent(name);
  }

  function apiPath(name, ...rest) {
    return ["/v1/collections", encodeURIComponent(name), ...rest].join("/");
  }

  function fmtNumber(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : "—";
  }

  function fmtBytes(n) {
    if (typeof n !== "number") return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }

  function json(value) {
    return JSON.stringify(value);
  }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, error) {
      super(error.message || "request failed");
      this.status = status;
      this.code = error.code || "http_" + status;
      this.details = error.details || {};
    }
  }

  async function request(method, path, body, accept) {
    const headers = { Accept: accept || "application/json" };
    if (state.key) headers.Authorization = "Bearer " + state.key;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (exc) {
      throw new ApiError(0, { code: "unreachable", message: "the server did not answer: " + exc.message });
    }
    const text = await resp.text();
    if (!resp.ok) {
      let error = { message: text.slice(0, 500) };
      try {
        const parsed = JSON.parse(text);
        if (parsed && parsed.error) error = parsed.error;
      } catch (_) { /* not JSON: keep the text */ }
      throw new ApiError(resp.status, error);
    }
    if (accept && accept !== "application/json") return text;
    return text ? JSON.parse(text) : null;
  }

  const api = {
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
    del: (path) => request("DELETE", path),
    text: (path) => request("GET", path, undefined, "text/plain"),
  };

  // An error as the API returned it: its code, message and details.
  function errorBox(err) {
    const box = el("div", { class: "error", role: "alert" });
    if (err instanceof ApiError) {
      box.append(el("strong", { class: "error-code", text: err.code }), ": ", el("span", { class: "error-message", text: err.message }));
      if (err.details && Object.keys(err.details).length) {
        box.append(el("pre", { class: "error-details", text: JSON.stringify(err.details, null, 2) }));
      }
    } else {
      box.append(el("strong", { class: "error-code", text: "error" }), ": ", el("span", { class: "error-message", text: String(err.message || err) }));
    }
    return box;
  }

  function flash(message, isError) {
    const box = clear($("flash"));
    if (message) box.append(isError ? errorBox(message) : el("div", { class: "notice", text: message }));
  }

  const canWrite = () => Boolean(state.me && state.me.writes);

  // ---- the key ----

  function showWho() {
    const who = $("whoami");
    who.className = "badge";
    if (!state.me) {
      who.textContent = "";
      return;
    }
    if (!state.me.auth) {
      who.textContent = "open server (no keys)";
      $("key-input").hidden = true;
      return;
    }
    who.textContent = state.me.role === "read" ? "read-only key" : "admin key";
    if (state.me.role === "read") who.classList.add("read");
  }

  async function identify() {
    try {
      state.me = await api.get("/whoami");
      return true;
    } catch (err) {
      state.me = null;
      showWho();
      const main = clear($("main"));
      main.append(el("div", { class: "panel" },
        el("h1", { text: "API key needed" }),
        el("p", { text: "This server checks API keys. Enter one above: it is kept in this browser tab only (sessionStorage) and sent as an Authorization header." }),
        errorBox(err)));
      $("key-input").focus();
      return false;
    }
  }

  function setupKeyForm() {
    $("key-input").value = state.key;
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.key = $("key-input").value.trim();
      if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
      else sessionStorage.removeItem(KEY_STORAGE);
      start();
    });
    $("key-forget").addEventListener("click", () => {
      state.key = "";
      sessionStorage.removeItem(KEY_STORAGE);
      $("key-input").value = "";
      start();
    });
  }

  // ---- collection facts, shared by the list and the collection page ----

  function indexText(info) {
    const spec = info.index || {};
    const kind = (info.index_state || {}).kind;
    return spec.type === kind || !kind ? String(spec.type || kind || "—") : spec.type + " → " + kind;
  }

  function stateText(info) {
    const s = info.index_state || {};
    const parts = [];
    if (s.building) parts.push("building " + s.building);
    parts.push("ann " + fmtNumber(s.ann_vectors), "delta " + fmtNumber(s.delta_vectors), "tombstones " + fmtNumber(s.tombstones));
    if (s.device && s.device !== "cpu") parts.push("on " + s.device);
    return parts.join(", ");
  }

  function recallText(info) {
    const recall = (info.index_state || {}).recall;
    if (!recall) return "exact";
    const parts = [];
    if (recall.target !== null && recall.target !== undefined) parts.push("target " + recall.target);
    const audit = recall.audit || {};
    if (audit.estimated_recall !== null && audit.estimated_recall !== undefined) {
      parts.push("estimated " + audit.estimated_recall.toFixed(3) + " (" + fmtNumber(audit.samples) + " samples)");
    }
    if (recall.calibrated) parts.push("calibrated");
    return parts.join(", ") || "—";
  }

  function modelText(info) {
    return info.embedding ? info.embedding.model : "none (vectors only)";
  }

  function capacityText(info) {
    const cap = info.capacity;
    if (!cap) return "unbounded";
    return "max " + fmtNumber(cap.max_records) + " (" + cap.eviction + ")";
  }

  // ---- page: the collections ----

  async function collectionsPage() {
    const main = clear($("main"));
    clear($("crumbs")).append("collections");
    const panel = el("section", { class: "panel", id: "collections" },
      el("h1", {}, "Collections ", el("button", { type: "button", onclick: () => collectionsPage(), text: "Refresh" })));
    main.append(panel);
    let names;
    try {
      names = (await api.get("/v1/collections")).collections;
    } catch (err) {
      panel.append(errorBox(err));
      return;
    }
    if (!names.length) {
      panel.append(el("p", { class: "muted", text: "No collections yet. Create one with POST /v1/collections (see /docs)." }));
      return;
    }
    const infos = await Promise.all(names.map((name) => api.get(apiPath(name)).catch((err) => ({ name, err }))));
    const rows = infos.map((info) => {
      const link = el("a", { href: collectionHref(info.name), class: "collection-link", text: info.name });
      if (info.err) return el("tr", { "data-collection": info.name }, el("td", {}, link), el("td", { colspan: 8 }, errorBox(info.err)));
      return el("tr", { "data-collection": info.name },
        el("td", {}, link),
        el("td", { class: "num count", text: fmtNumber(info.count) }),
        el("td", { class: "num", text: info.dim }),
        el("td", { text: info.metric }),
        el("td", { text: indexText(info) }),
        el("td", { text: stateText(info) }),
        el("td", { text: recallText(info) }),
        el("td", { text: modelText(info) }),
        el("td", { text: capacityText(info) }));
    });
    panel.append(el("table", {},
      el("thead", {}, el("tr", {}, ["name", "records", "dim", "metric", "index", "state", "recall", "model", "capacity"].map(
        (h, i) => el("th", { class: i === 1 || i === 2 ? "num" : null, text: h })))),
      el("tbody", {}, rows)));
  }

  // ---- page: one collection ----

  function vectorSummary(vector) {
    if (!Array.isArray(vector)) return "—";
    const head = vector.slice(0, 4).map((x) => x.toFixed(3)).join(", ");
    const norm = Math.sqrt(vector.reduce((acc, x) => acc + x * x, 0));
    return vector.length + "-d [" + head + (vector.length > 4 ? ", …" : "") + "] ‖v‖=" + norm.toFixed(3);
  }

  function metadataText(metadata) {
    return metadata && Object.keys(metadata).length ? json(metadata) : "";
  }

  function parseJson(text, what) {
    try {
      return JSON.parse(text);
    } catch (exc) {
      throw new Error(what + " is not valid JSON: " + exc.message);
    }
  }

  async function collectionPage(name) {
    const main = clear($("main"));
    clear($("crumbs")).append(el("a", { href: "/console", text: "collections" }), " / ", el("span", { text: name }));
    document.title = name + " · vecdb console";
    const overview = el("section", { class: "panel", id: "overview" });
    main.append(overview);
    let info;
    try {
      info = await api.get(apiPath(name));
    } catch (err) {
      overview.append(el("h1", { text: name }), errorBox(err));
      return;
    }
    const page = {
      name,
      info,
      overview,
      search: el("section", { class: "panel", id: "search" }),
      sources: el("section", { class: "panel", id: "sources" }),
      records: el("section", { class: "panel", id: "records" }),
      snapshots: el("section", { class: "panel", id: "snapshots" }),
    };
    main.append(page.search, el("div", { class: "grid2" }, page.sources, page.snapshots), page.records);
    renderOverview(page);
    renderSearch(page);
    await Promise.all([renderSources(page), renderRecords(page, null, []), renderSnapshots(page)]);
  }

  async function refreshOverview(page) {
    try {
      page.info = await api.get(apiPath(page.name));
      renderOverview(page);
    } catch (err) {
      page.overview.append(errorBox(err));
    }
  }

  function renderOverview(page) {
    const info = page.info;
    const facts = [
      ["records", fmtNumber(info.count), "count"],
      ["sources", fmtNumber(info.sources)],
      ["dim", info.dim],
      ["metric", info.metric],
      ["index", indexText(info) + " " + json(info.index)],
      ["state", stateText(info)],
      ["recall", recallText(info)],
      ["model", modelText(info)],
      ["capacity", capacityText(info)],
      ["seq", info.seq + " (checkpoint " + info.checkpoint_seq + ")"],
    ];
    clear(page.overview).append(
      el("h1", {}, info.name, " ", el("button", { type: "button", text: "Refresh", onclick: () => refreshAll(page) })),
      el("dl", { class: "facts" }, facts.map(([k, v, id]) => [el("dt", { text: k }), el("dd", { id: id ? "info-" + id : null, text: v })])));
  }

  async function refreshAll(page) {
    await Promise.all([refreshOverview(page), renderSources(page), renderRecords(page, null, []), renderSnapshots(page)]);
  }

  // The search form. searchBody() turns its fields into the REST body (a new field is one control and
  // one line there).
  function renderSearch(page) {
    const hasModel = Boolean(page.info.embedding);
    const kind = el("select", { name: "query_kind" },
      el("option", { value: "text", disabled: !hasModel, selected: hasModel, text: "text" + (hasModel ? "" : " (no model)") }),
      el("option", { value: "vector", selected: !hasModel, text: "vector (JSON)" }));
    // Search mode (docs/search.md): text and hybrid need the collection's full-text index; hybrid embeds
    // the query with the collection's model. Both take the query as text.
    const hasText = Boolean(page.info.text_index);
    const mode = el("select", { name: "mode" },
      el("option", { value: "vector", selected: true, text: "vector" }),
      el("option", { value: "text", disabled: !hasText, text: "text (BM25)" + (hasText ? "" : " (no text index)") }),
      el("option", { value: "hybrid", disabled: !(hasText && hasModel), text: "hybrid" + (hasText && hasModel ? "" : hasText ? " (no model)" : " (no text index)") }));
    const query = el("textarea", { name: "query", rows: 2, placeholder: hasModel ? "what to look for" : "[0.1, 0.2, …] (" + page.info.dim + " numbers)" });
    const k = el("input", { name: "k", type: "number", value: 10, min: 1 });
    const filter = el("textarea", { name: "filter", rows: 2, placeholder: '{"lang": "en", "year": {"$gte": 2020}}' });
    const result = el("div", { id: "search-results" });
    const form = el("form", { class: "stack", id: "search-form", novalidate: true },
      el("label", { text: "mode" }), mode,
      el("label", { text: "query as" }), kind,
      el("label", { text: "query" }), query,
      el("label", { text: "filter" }), filter,
      el("label", { text: "k" }), k,
      el("div", { class: "actions" }, el("button", { type: "submit", text: "Search" })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clear(result);
      let body;
      try {
        body = searchBody({ mode: mode.value, kind: kind.value, query: query.value, filter: filter.value, k: k.value });
      } catch (err) {
        result.append(errorBox(err));
        return;
      }
      try {
        const answer = await api.post(apiPath(page.name, "search"), body);
        result.append(hitsTable(answer.results[0] || []));
      } catch (err) {
        result.append(errorBox(err));
      }
    });
    clear(page.search).append(el("h2", { text: "Search" }), form, result);
  }

  function searchBody(fields) {
    const k = Number(fields.k);
    // A k that is not an integer goes as typed: the API's validation error says what is wrong.
    const body = { k: Number.isInteger(k) && fields.k.trim() !== "" ? k : fields.k, include: ["text", "metadata", "source"] };
    if (fields.mode !== "vector") {
      body.mode = fields.mode;
      body.texts = [fields.query];
    } else if (fields.kind === "text") body.texts = [fields.query];
    else body.vectors = [parseJson(fields.query, "the query vector")];
    if (fields.filter.trim()) body.filter = parseJson(fields.filter, "the filter");
    return body;
  }

  function hitsTable(hits) {
    if (!hits.length) return el("p", { class: "muted", text: "No hits." });
    return el("table", { class: "hits" },
      el("thead", {}, el("tr", {}, ["#", "id", "score", "source", "text", "metadata"].map((h) => el("th", { text: h })))),
      el("tbody", {}, hits.map((hit, i) => el("tr", { class: "hit" },
        el("td", { class: "num", text: i + 1 }),
        el("td", { class: "hit-id", text: hit.id }),
        el("td", { class: "num", text: hit.score.toFixed(4) }),
        el("td", { text: hit.source || "" }),
        el("td", { class: "text", text: hit.text || "" }),
        el("td", { class: "json", text: metadataText(hit.metadata) })))));
  }

  async function renderSources(page) {
    const box = clear(page.sources);
    box.append(el("h2", { text: "Sources" }));
    let sources;
    try {
      sources = (await api.get(apiPath(page.name, "sources"))).sources;
    } catch (err) {
      box.append(errorBox(err));
      return;
    }
    if (!sources.length) {
      box.append(el("p", { class: "muted", text: "No record has a source." }));
      return;
    }
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, el("th", { text: "source" }), el("th", { class: "num", text: "records" }), canWrite() ? el("th", {}) : null)),
      el("tbody", {}, sources.map((s) => el("tr", { "data-source": s.source },
        el("td", { text: s.source }),
        el("td", { class: "num", text: fmtNumber(s.count) }),
        canWrite() ? el("td", {}, el("button", {
          type: "button",
          class: "danger delete-source",
          text: "Delete",
          onclick: () => deleteSource(page, s),
        })) : null)))));
  }

  async function deleteSource(page, s) {
    const question = "Delete the " + s.count + " record(s) of source \"" + s.source + "\" from collection \"" + page.name + "\"? This cannot be undone.";
    if (!window.confirm(question)) return;
    try {
      const answer = await api.del(apiPath(page.name, "sources", encodeURIComponent(s.source)));
      flash("Deleted " + answer.count + " record(s) of source \"" + s.source + "\".");
    } catch (err) {
      flash(err, true);
    }
    await refreshAll(page);
  }

  const PAGE_SIZE = 20;

  // cursors: the cursors of the pages before this one (for "Previous").
  async function renderRecords(page, cursor, cursors) {
    const box = clear(page.records);
    box.append(el("h2", { text: "Records" }));
    let answer;
    try {
      answer = await api.post(apiPath(page.name, "scroll"), { cursor, limit: PAGE_SIZE, include: ["text", "metadata", "source", "vector"] });
    } catch (err) {
      box.append(errorBox(err));
      return;
    }
    if (!answer.records.length && !cursor) {
      box.append(el("p", { class: "muted", text: "No records." }));
      return;
    }
    box.append(el("table", { class: "records" },
      el("thead", {}, el("tr", {}, ["id", "source", "text", "metadata", "vector"].map((h) => el("th", { text: h })))),
      el("tbody", {}, answer.records.map((r) => el("tr", { class: "record", "data-id": r.id },
        el("td", { class: "record-id", text: r.id }),
        el("td", { text: r.source || "" }),
        el("td", { class: "text record-text", text: r.text === null || r.text === undefined ? "" : r.text }),
        el("td", { class: "json", text: metadataText(r.metadata) }),
        el("td", { class: "vector", text: vectorSummary(r.vector) }))))));
    const first = cursors.length * PAGE_SIZE + 1;
    box.append(el("div", { class: "pager" },
      el("button", { type: "button", text: "← Previous", disabled: !cursors.length, onclick: () => renderRecords(page, cursors[cursors.length - 1], cursors.slice(0, -1)) }),
      el("span", { class: "muted", text: "records " + first + "–" + (first + answer.records.length - 1) + " in id order" }),
      el("button", { type: "button", class: "next-page", text: "Next →", disabled: !answer.next_cursor, onclick: () => renderRecords(page, answer.next_cursor, [...cursors, cursor]) })));
  }

  async function renderSnapshots(page) {
    const box = clear(page.snapshots);
    box.append(el("h2", { text: "Snapshots" }));
    if (canWrite()) {
      const nameInput = el("input", { name: "snapshot", placeholder: "name (default: the time)" });
      const form = el("form", { id: "snapshot-form" }, nameInput, " ", el("button", { type: "submit", text: "Create snapshot" }));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const name = nameInput.value.trim();
          const snap = await request("POST", apiPath(page.name, "snapshots"), name ? { name } : undefined);
          flash("Snapshot \"" + snap.name + "\" created (" + snap.records + " records).");
        } catch (err) {
          flash(err, true);
        }
        await renderSnapshots(page);
      });
      box.append(form);
    }
    let snaps;
    try {
      snaps = (await api.get(apiPath(page.name, "snapshots"))).snapshots;
    } catch (err) {
      box.append(errorBox(err));
      return;
    }
    if (!snaps.length) {
      box.append(el("p", { class: "muted", text: "No snapshots." }));
      return;
    }
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, ["name", "created", "records", "size", canWrite() ? "" : null].filter((h) => h !== null).map((h) => el("th", { text: h })))),
      el("tbody", {}, snaps.map((s) => el("tr", { "data-snapshot": s.name },
        el("td", { text: s.name }),
        el("td", { text: s.created_at.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC") }),
        el("td", { class: "num", text: fmtNumber(s.records) }),
        el("td", { class: "num", text: fmtBytes(s.bytes) }),
        canWrite() ? el("td", {},
          el("button", { type: "button", class: "restore-snapshot", text: "Restore…", onclick: () => restoreSnapshot(page, s) }), " ",
          el("button", { type: "button", class: "danger delete-snapshot", text: "Delete", onclick: () => deleteSnapshot(page, s) })) : null)))));
  }

  async function restoreSnapshot(page, s) {
    const target = window.prompt("Restore snapshot \"" + s.name + "\" into a new collection named:", page.name + "-restored");
    if (target === null) return;
    clear($("flash"));
    try {
      const info = await api.post(apiPath(page.name, "snapshots", encodeURIComponent(s.name), "restore"), { target: target.trim() });
      $("flash").append(el("div", { class: "notice" }, "Restored " + fmtNumber(info.count) + " records into ",
        el("a", { href: collectionHref(info.name), class: "restored-link", text: info.name }), "."));
    } catch (err) {
      flash(err, true);
    }
  }

  async function deleteSnapshot(page, s) {
    if (!window.confirm("Delete snapshot \"" + s.name + "\" of \"" + page.name + "\"?")) return;
    try {
      await api.del(apiPath(page.name, "snapshots", encodeURIComponent(s.name)));
      flash("Snapshot \"" + s.name + "\" deleted.");
    } catch (err) {
      flash(err, true);
    }
    await renderSnapshots(page);
  }

  // ---- live view: request rate and latency per operation, from the server's /metrics ----

  const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

  // {"rest search": {count, errors, sum, buckets: [[le, cumulative count], ...]}}
  function parseMetrics(text) {
    const ops = {};
    const op = (labels) => {
      const key = labels.transport + " " + labels.operation;
      if (!ops[key]) ops[key] = { transport: labels.transport, operation: labels.operation, count: 0, errors: 0, sum: 0, buckets: [] };
      return ops[key];
    };
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = LINE.exec(line);
      if (!m) continue;
      const labels = {};
      for (const lm of (m[2] || "").matchAll(LABEL)) labels[lm[1]] = lm[2];
      const value = Number(m[3]);
      if (m[1] === "vecdb_requests_total") {
        const o = op(labels);
        o.count += value;
        if (labels.code !== "ok") o.errors += value;
      } else if (m[1] === "vecdb_request_seconds_sum") {
        op(labels).sum = value;
      } else if (m[1] === "vecdb_request_seconds_bucket") {
        op(labels).buckets.push([labels.le === "+Inf" ? Infinity : Number(labels.le), value]);
      }
    }
    return ops;
  }

  // The q-quantile of the requests between two scrapes, from the histogram's bucket deltas.
  function quantile(now, before, q) {
    const prev = new Map((before ? before.buckets : []).map(([le, c]) => [le, c]));
    const deltas = now.buckets.map(([le, c]) => [le, c - (prev.get(le) || 0)]).sort((a, b) => a[0] - b[0]);
    const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
    if (total <= 0) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const [le, c] of deltas) {
      if (c >= rank) {
        if (le === Infinity) return lower;
        const inBucket = c - below;
        return lower + (le - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
      }
      lower = le;
      below = c;
    }
    return lower;
  }

  const ms = (seconds) => (seconds === null ? "—" : (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1));

  const live = { before: null, at: 0, timer: null };

  async function pollLive() {
    if (document.visibilityState === "hidden") return;
    const body = $("live-body");
    let text;
    try {
      text = await api.text("/metrics");
    } catch (err) {
      clear(body).append(errorBox(err));
      return;
    }
    const now = performance.now();
    const ops = parseMetrics(text);
    const before = live.before;
    const seconds = (now - live.at) / 1000;
    const rows = Object.keys(ops).sort().map((key) => {
      const o = ops[key];
      const b = before ? before[key] : null;
      const dCount = o.count - (b ? b.count : 0);
      const dErrors = o.errors - (b ? b.errors : 0);
      const dSum = o.sum - (b ? b.sum : 0);
      const windowed = before !== null;
      return el("tr", { "data-op": o.operation, "data-transport": o.transport },
        el("td", { text: o.transport }),
        el("td", { class: "op-name", text: o.operation }),
        el("td", { class: "num", text: windowed ? (dCount / seconds).toFixed(2) : "…" }),
        el("td", { class: "num", text: windowed ? (dErrors / seconds).toFixed(2) : "…" }),
        el("td", { class: "num", text: windowed && dCount > 0 ? ms(dSum / dCount) : "—" }),
        el("td", { class: "num", text: windowed ? ms(quantile(o, b, 0.5)) : "—" }),
        el("td", { class: "num", text: windowed ? ms(quantile(o, b, 0.95)) : "—" }),
        el("td", { class: "num op-total", text: fmtNumber(o.count) }),
        el("td", { class: "num", text: o.count > 0 ? ms(o.sum / o.count) : "—" }));
    });
    live.before = ops;
    live.at = now;
    $("live-note").textContent = "from /metrics every " + LIVE_INTERVAL_MS / 1000 + " s; rates and latencies over the last interval (requests by this console included)";
    clear(body).append(rows.length
      ? el("table", { id: "live-table" },
        el("thead", {}, el("tr", {}, ["transport", "operation", "req/s", "errors/s", "mean ms", "p50 ms", "p95 ms", "total", "mean ms (all)"].map(
          (h, i) => el("th", { class: i >= 2 ? "num" : null, text: h })))),
        el("tbody", {}, rows))
      : el("p", { class: "muted", text: "No requests counted yet." }));
  }

  function startLive() {
    if (live.timer !== null) clearInterval(live.timer);
    live.before = null;
    pollLive();
    live.timer = setInterval(pollLive, LIVE_INTERVAL_MS);
  }

  // ---- routing: the address is the page ----

  function stopLive() {
    if (live.timer !== null) clearInterval(live.timer);
    live.timer = null;
    clear($("live-body"));
  }

  async function start() {
    flash(null);
    if (!(await identify())) {
      stopLive();
      return;
    }
    showWho();
    const path = window.location.pathname.replace(/\/+$/, "");
    const match = /^\/console\/collections\/([^/]+)$/.exec(path);
    startLive();
    if (!match) {
      await collectionsPage();
      return;
    }
    let name;
    try {
      name = decodeURIComponent(match[1]);
    } catch (_) {
      clear($("main")).append(errorBox(new Error("not a collection address: " + path)));
      return;
    }
    await collectionPage(name);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupKeyForm();
    start();
  });
})();
