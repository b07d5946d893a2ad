"""The web console end to end: headless Chromium (Debian's, through Playwright) against a real
``vecdb serve`` with an admin and a read-only key.

One server for the module (it loads the embedding model once): collection ``docs`` (the embedding test
corpus, a source per topic, and one record whose text is markup), ``scratch`` (vectors only, for
deleting a source) and ``vault`` (snapshots). Each test opens its own browser context, so the key typed
in one test (sessionStorage) is not seen by another; a test fails on any uncaught script error or CSP
violation in the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser import CHROMIUM_ARGS, chromium_path
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from serverproc import ServerProcess, launch

from tests.server.corpus import DOCS, QUERIES

ADMIN, READER = "console-admin", "console-reader"
SCRIPT_TEXT = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2"><b>bold?</b>'
TOPICS = {
    "animals.md": ["cat", "dog"],
    "kitchen/cooking.md": ["pasta", "bread"],
    "code/languages.md": ["python", "rust"],
    "space.md": ["mars", "moon"],
    "music.md": ["piano", "guitar"],
    "weather.md": ["rain", "snow"],
}
SOURCE_OF = {doc: source for source, docs in TOPICS.items() for doc in docs}
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)

# Installing chromium (CI's first run) and loading the model in the server take minutes at worst.
pytestmark = pytest.mark.timeout(900)


def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("console")
    sp = launch(base / "data", base / "logs", "--api-key", ADMIN, "--api-key", f"{READER}:read")
    try:
        sp.wait_ready()
        with sp.http(ADMIN) as http:
            ok(http.post("/v1/collections", json={"name": "docs", "embedding": {}, "text_index": {}}), 201)
            ids = [*DOCS, "xss"]
            ok(
                http.post(
                    "/v1/collections/docs/upsert",
                    json={
                        "ids": ids,
                        "texts": [*DOCS.values(), SCRIPT_TEXT],
                        "metadatas": [
                            *({"topic": SOURCE_OF[i], "n": n} for n, i in enumerate(DOCS)),
                            {"x": "<i>"},
                        ],
                        "sources": [*(SOURCE_OF[i] for i in DOCS), "evil.html"],
                    },
                ),
            )
            ok(http.post("/v1/collections", json={"name": "scratch", "dim": 4, "metric": "l2"}), 201)
            ok(
                http.post(
                    "/v1/collections/scratch/upsert",
                    json={
                        "ids": ["a1", "a2", "a3", "b1", "b2"],
                        "vectors": [[float(i), 0.0, 1.0, 2.0] for i in range(5)],
                        "sources": ["a.txt", "a.txt", "a.txt", "dir/b.txt", "dir/b.txt"],
                    },
                )
            )
            ok(http.post("/v1/collections", json={"name": "vault", "dim": 2}), 201)
            ok(
                http.post(
                    "/v1/collections/vault/upsert", json={"ids": ["v1", "v2"], "vectors": [[1, 0], [0, 1]]}
                )
            )
        yield sp
    finally:
        rc = sp.stop()
        assert rc == 0, sp.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab in a fresh context; the test fails on a script error or a CSP violation in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}") if "Content Security Policy" in msg.text else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert not problems, problems


def open_console(page: Page, server: ServerProcess, path: str, key: str | None) -> None:
    """Go to ``path``; when the console asks for a key, type ``key`` into it."""
    page.goto(server.rest_url + path)
    if key is not None:
        expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
        page.fill("#key-input", key)
        page.click("#key-form button[type=submit]")


def accept_next_dialog(page: Page, answer: str | None = None) -> list[str]:
    """Accept the next confirm/prompt (with ``answer`` for a prompt); returns where its message lands."""
    seen: list[str] = []

    def handle(dialog: Dialog) -> None:
        seen.append(dialog.message)
        if answer is None:
            dialog.accept()
        else:
            dialog.accept(answer)

    page.once("dialog", handle)
    return seen


def test_lists_collections_and_opens_one(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console", ADMIN)
    expect(page.locator("#whoami")).to_have_text("admin key")
    docs = page.locator('tr[data-collection="docs"]')
    expect(docs.locator("td.count")).to_have_text(str(len(DOCS) + 1))
    expect(docs).to_contain_text("all-MiniLM-L6-v2")
    expect(docs).to_contain_text("cosine")
    expect(page.locator('tr[data-collection="scratch"]')).to_contain_text("none (vectors only)")
    assert page.locator("#collections tbody tr").count() == 3

    docs.get_by_role("link", name="docs").click()
    page.wait_for_url("**/console/collections/docs")
    # The key was typed once: the collection page (a new document) found it in sessionStorage.
    expect(page.locator("#info-count")).to_have_text(str(len(DOCS) + 1))
    expect(page.locator('#sources tr[data-source="kitchen/cooking.md"]')).to_contain_text("2")
    expect(page.locator("#records tr.record")).to_have_count(len(DOCS) + 1)
    expect(page.locator('#records tr[data-id="cat"] td.vector')).to_contain_text("384-d [")


def test_pages_are_addressable(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/scratch", ADMIN)
    expect(page.locator("#info-count")).to_have_text("5")
    expect(page.locator("#crumbs")).to_contain_text("scratch")
    page.goto(server.rest_url + "/console/collections/no-such")
    expect(page.locator("#overview .error-code")).to_have_text("collection_not_found")
    page.goto(server.rest_url + "/console/collections/%E0%A4%A")  # not UTF-8: said, not thrown
    expect(page.locator("#main .error-message")).to_contain_text("not a collection address")


def test_text_search_finds_the_expected_top_hit(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/docs", READER)
    for text, expected in QUERIES[:2]:
        page.fill('#search-form textarea[name="query"]', text)
        page.click('#search-form button[type="submit"]')
        expect(page.locator("#search-results tr.hit").first.locator("td.hit-id")).to_have_text(expected)
    expect(page.locator("#search-results tr.hit")).to_have_count(10)
    page.fill('#search-form input[name="k"]', "3")
    page.fill('#search-form textarea[name="filter"]', '{"topic": "space.md"}')
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results td.hit-id")).to_have_text(["mars", "moon"])


def test_text_and_hybrid_modes(page: Page, server: ServerProcess) -> None:
    with server.http(READER) as http:
        want = {
            mode: [
                h["id"]
                for h in ok(
                    http.post(
                        "/v1/collections/docs/search",
                        json={"texts": [QUERIES[0][0]], "k": 3, "mode": mode},
                    )
                )["results"][0]
            ]
            for mode in ("text", "hybrid")
        }
    assert want["text"] and want["hybrid"], want  # the query shares words with the corpus
    open_console(page, server, "/console/collections/docs", READER)
    page.fill('#search-form input[name="k"]', "3")
    page.fill('#search-form textarea[name="query"]', QUERIES[0][0])
    for mode in ("text", "hybrid"):
        page.select_option('#search-form select[name="mode"]', mode)
        page.click('#search-form button[type="submit"]')
        expect(page.locator("#search-results td.hit-id")).to_have_text(want[mode])
    # No text index: the keyword modes are offered but disabled, and say why.
    open_console(page, server, "/console/collections/scratch", None)
    expect(page.locator('#search-form select[name="mode"] option[value="text"]')).to_be_disabled()
    expect(page.locator('#search-form select[name="mode"] option[value="hybrid"]')).to_contain_text(
        "no text index"
    )


def test_filter_errors_are_shown_as_the_api_returns_them(page: Page, server: ServerProcess) -> None:
    bad = '{"n": {"$near": 3}}'
    with server.http(READER) as http:
        resp = http.post(
            "/v1/collections/docs/search", json={"texts": ["x"], "k": 10, "filter": {"n": {"$near": 3}}}
        )
    assert resp.status_code == 400
    api_error = resp.json()["error"]
    open_console(page, server, "/console/collections/docs", READER)
    page.fill('#search-form textarea[name="query"]', "x")
    page.fill('#search-form textarea[name="filter"]', bad)
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results .error-code")).to_have_text(api_error["code"])
    expect(page.locator("#search-results .error-message")).to_have_text(api_error["message"])
    # Not JSON at all: said before anything is sent.
    page.fill('#search-form textarea[name="filter"]', "{topic: 1")
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results .error-message")).to_contain_text("the filter is not valid JSON")
    # A k the API refuses: its validation error, as returned.
    page.fill('#search-form textarea[name="filter"]', "")
    page.fill('#search-form input[name="k"]', "0")
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results .error-code")).to_have_text("invalid_argument")
    expect(page.locator("#search-results .error-message")).to_have_text("k must be at least 1, got 0")


def test_vector_search_on_a_collection_without_a_model(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/scratch", READER)
    expect(page.locator('#search-form select[name="query_kind"]')).to_have_value("vector")
    page.fill('#search-form textarea[name="query"]', "[3.1, 0, 1, 2]")
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results td.hit-id").first).to_have_text("b1")
    page.fill('#search-form textarea[name="query"]', "[1, 2]")
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results .error-code")).to_have_text("dimension_mismatch")


def test_delete_a_source_after_confirming(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/scratch", ADMIN)
    expect(page.locator("#info-count")).to_have_text("5")
    row = page.locator('#sources tr[data-source="dir/b.txt"]')
    # Dismissed: nothing happens.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("button.delete-source").click()
    expect(page.locator("#info-count")).to_have_text("5")
    asked = accept_next_dialog(page)
    row.locator("button.delete-source").click()
    expect(page.locator("#info-count")).to_have_text("3")
    assert asked and 'source "dir/b.txt"' in asked[0] and "2 record(s)" in asked[0]
    expect(page.locator("#flash")).to_contain_text('Deleted 2 record(s) of source "dir/b.txt"')
    expect(page.locator('#sources tr[data-source="dir/b.txt"]')).to_have_count(0)
    expect(page.locator("#records tr.record")).to_have_count(3)
    with server.http(ADMIN) as http:
        assert ok(http.get("/v1/collections/scratch/count"))["count"] == 3


def test_read_only_key_sees_no_write_buttons(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/docs", READER)
    expect(page.locator("#whoami")).to_have_text("read-only key")
    expect(page.locator("#sources tr[data-source]")).to_have_count(len(TOPICS) + 1)
    expect(page.locator("#records tr.record")).to_have_count(len(DOCS) + 1)
    expect(page.locator("#snapshots")).to_contain_text("Snapshots")
    assert page.locator("button.delete-source").count() == 0
    assert page.locator("#snapshot-form").count() == 0
    assert page.locator("button.restore-snapshot, button.delete-snapshot").count() == 0


def test_record_text_with_markup_renders_as_text(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/docs", READER)
    cell = page.locator('#records tr[data-id="xss"] td.record-text')
    expect(cell).to_have_text(SCRIPT_TEXT)
    expect(page.locator('#records tr[data-id="xss"] td.json')).to_have_text('{"x":"<i>"}')
    page.fill('#search-form textarea[name="query"]', "bold script image")
    page.fill('#search-form textarea[name="filter"]', '{"x": "<i>"}')
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results td.text")).to_have_text([SCRIPT_TEXT])
    # Text nodes only: no element was made from it, and nothing ran.
    assert page.locator("main script, main img, main b, main i").count() == 0
    assert page.evaluate("window.__xss") is None


def test_snapshots_create_and_restore(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/vault", ADMIN)
    page.fill('#snapshot-form input[name="snapshot"]', "before-change")
    page.click('#snapshot-form button[type="submit"]')
    row = page.locator('#snapshots tr[data-snapshot="before-change"]')
    expect(row).to_contain_text("2")
    expect(page.locator("#flash")).to_contain_text('Snapshot "before-change" created (2 records)')
    asked = accept_next_dialog(page, "vault-copy")
    row.locator("button.restore-snapshot").click()
    link = page.locator("#flash a.restored-link")
    expect(link).to_have_text("vault-copy")
    assert asked and "before-change" in asked[0]
    link.click()
    page.wait_for_url("**/console/collections/vault-copy")
    expect(page.locator("#info-count")).to_have_text("2")
    # Restoring onto an existing name: the API's error, shown.
    page.goto(server.rest_url + "/console/collections/vault")
    accept_next_dialog(page, "vault")
    page.locator('#snapshots tr[data-snapshot="before-change"] button.restore-snapshot').click()
    expect(page.locator("#flash .error-code")).to_have_text("collection_exists")


def test_live_view_shows_rate_and_latency_per_operation(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console/collections/docs", READER)
    page.fill('#search-form textarea[name="query"]', "planets")
    page.click('#search-form button[type="submit"]')
    expect(page.locator("#search-results tr.hit").first).to_be_visible()
    search = page.locator('#live-table tr[data-op="search"][data-transport="rest"]')
    expect(search).to_be_visible()
    # After a second scrape, the row's rate and latency columns are numbers over that interval.
    expect(search.locator("td").nth(2)).not_to_have_text("…")
    cells = search.locator("td").all_text_contents()
    assert float(cells[2]) >= 0.0 and int(cells[7].replace(",", "")) >= 1
    assert float(cells[8]) > 0.0  # mean latency of every search so far, in ms


def test_a_wrong_key_is_refused_and_can_be_replaced(page: Page, server: ServerProcess) -> None:
    open_console(page, server, "/console", "not-a-key")
    expect(page.locator("#main .error-code")).to_have_text("unauthenticated")
    expect(page.locator("#main .error-message")).to_have_text("unknown API key")
    assert page.locator("#collections").count() == 0
    page.fill("#key-input", ADMIN)
    page.click("#key-form button[type=submit]")
    expect(page.locator('tr[data-collection="docs"]')).to_be_visible()
    # The key is in this tab's sessionStorage, never in a cookie.
    assert page.evaluate("sessionStorage.getItem('vecdb.apiKey')") == ADMIN
    assert page.context.cookies() == []
    page.click("#key-forget")
    expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('vecdb.apiKey')") is None
    page.wait_for_timeout(2500)  # a poll of the live view would have shown its 401 by now
    expect(page.locator("#live-body")).to_be_empty()


def test_console_responses_carry_the_csp(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.rest_url) as http:
        for path in ("/console", "/console/collections/docs", "/console/static/console.js"):
            resp = http.get(path)
            assert resp.status_code == 200, path
            assert "script-src 'self'" in resp.headers["content-security-policy"], path
        assert http.get("/v1/collections").status_code == 401  # the data still needs a key
