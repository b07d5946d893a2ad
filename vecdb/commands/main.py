"""Argument parsing and output of ``vecdb ingest | sources | search | collections`` (and, through
``vecdb.commands.ops``, ``snapshot | restore | export | import``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from vecdb.commands.connect import CommandError, Connection, connect, json_flag
from vecdb.commands.ops import OPS_COMMANDS, add_ops_commands, run_ops_command
from vecdb.embed import read_folder, resolve_model
from vecdb.errors import VecDBError
from vecdb.ingest import FileReport, discover, glob_regex, ingest, split_text

__all__ = ["add_commands", "run_command"]

COMMANDS = ("ingest", "sources", "search", "collections", *OPS_COMMANDS)


def _connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where (a server by default)")
    group.add_argument("--url", help="the server's REST URL (default: $VECDB_URL or http://127.0.0.1:8080)")
    group.add_argument("--api-key", help="API key for the server (default: $VECDB_API_KEY)")
    group.add_argument(
        "--ca-cert",
        type=Path,
        help="PEM CA certificate that signed an https:// server's certificate (default: $VECDB_CA_CERT, "
        "else the system's roots)",
    )
    group.add_argument(
        "--client-cert",
        type=Path,
        help="PEM client certificate for mutual TLS (default: $VECDB_CLIENT_CERT)",
    )
    group.add_argument("--client-key", type=Path, help="its PEM private key (default: $VECDB_CLIENT_KEY)")
    group.add_argument(
        "--data-dir", type=Path, help="work on this data directory in-process instead (no server may hold it)"
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ingest",
        help="keep a collection in step with folders of documents",
        description="Ingest .txt, .md, .rst, .html (and .pdf with the pdf extra) files: each file is one "
        "source (its path relative to the given folder), split into chunks embedded by the collection's "
        "model. Unchanged files (same content hash) are skipped; a changed file's chunks are replaced in "
        "one atomic write; unreadable files are reported and skipped. Exit status 1 if any file failed.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="folders or files")
    p.add_argument("--collection", required=True, help="created (with an embedding model) when missing")
    p.add_argument("--glob", help="only sources matching this pattern, e.g. '**/*.md' or 'docs/*'")
    p.add_argument(
        "--chunk-size",
        type=int,
        help="model tokens per chunk (default: the model's window less its special tokens and document "
        "prompt; larger is an error: the model would cut the chunk short)",
    )
    p.add_argument(
        "--chunk-overlap", type=int, help="model tokens of overlap (default: an eighth of the size)"
    )
    p.add_argument(
        "--delete-missing",
        action="store_true",
        help="delete the sources of files that are not there any more (with --glob: those matching it)",
    )
    p.add_argument("--model", help="embedding model when the collection is created (default: the server's)")
    p.add_argument("--quiet", action="store_true", help="only the summary line (and failures)")
    _connection_args(p)

    p = sub.add_parser("sources", help="list or delete a collection's sources")
    p.add_argument("action", choices=("list", "delete"))
    p.add_argument("source", nargs="*", help="sources to delete")
    p.add_argument("--collection", required=True)
    _connection_args(p)

    p = sub.add_parser("search", help="search a collection by text and print a table")
    p.add_argument("query")
    p.add_argument("--collection", required=True)
    p.add_argument("-k", type=int, default=5, help="how many hits (default 5)")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"path": "docs/a.md"}\'')
    p.add_argument(
        "--mode",
        choices=("vector", "text", "hybrid"),
        default="vector",
        help="vector (default), text (BM25 over the full-text index) or hybrid (both, fused)",
    )
    p.add_argument("--text-filter", help='full-text filter as JSON, e.g. \'{"$contains": "rotate"}\'')
    p.add_argument("--fusion", help='hybrid fusion as JSON, e.g. \'{"method": "weighted", "alpha": 0.7}\'')
    p.add_argument(
        "--json",
        action="store_true",
        help="print the hits as one JSON array (id, score, source, text, metadata; full text), best first",
    )
    _connection_args(p)

    p = sub.add_parser("collections", help="list, create or drop collections")
    p.add_argument("action", choices=("list", "create", "drop"))
    p.add_argument("name", nargs="?")
    p.add_argument("--dim", type=int, help="vector dimension (omit with an embedding model)")
    p.add_argument("--metric", default="cosine", choices=("cosine", "ip", "l2"))
    p.add_argument("--model", help="embedding model (default: the server's default model)")
    p.add_argument("--no-model", action="store_true", help="no embedding model: vectors only (needs --dim)")
    p.add_argument("--index", help='index spec as JSON, e.g. \'{"type": "hnsw"}\' (default auto)')
    p.add_argument(
        "--text-index",
        help='full-text index spec as JSON, e.g. \'{"tokenizer": "jieba"}\' ({}: defaults; default none)',
    )
    _connection_args(p)

    add_ops_commands(sub, _connection_args)


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run a data command; returns the exit status (errors are one line on ``err``, status 1)."""
    try:
        if args.command in ("restore", "check"):  # files of a data directory: no connection
            return run_ops_command(None, args, out)
        with connect(
            args.url,
            args.api_key,
            args.data_dir,
            ca_cert=args.ca_cert,
            client_cert=args.client_cert,
            client_key=args.client_key,
        ) as conn:
            if args.command in OPS_COMMANDS:
                return run_ops_command(conn, args, out)
            handler = {"ingest": _ingest, "sources": _sources, "search": _search, "collections": _collections}
            return handler[args.command](conn, args, out, err)
    except CommandError as exc:
        err.write(f"vecdb {args.command}: {exc}\n")
        return 1


# ---- ingest -------------------------------------------------------------------------------------------


def _ensure_text_collection(conn: Connection, name: str, model: str | None) -> None:
    if name not in conn.list_collections():
        conn.create_collection(name, embedding={"model": model} if model else {})
        return
    own = (conn.info(name).get("embedding") or {}).get("model")
    if not own:
        raise CommandError(f"collection {name!r} has no embedding model: ingest needs one to embed the text")
    if model and model != own:
        raise CommandError(f"collection {name!r} uses model {own!r}, not {model!r}")


def _token_budget(conn: Connection, name: str) -> tuple[Callable[[str], int], int]:
    """The collection's model's token count (without special tokens) and the tokens a chunk may hold:
    its window less the special tokens and the document prompt. The model's tokenizer is read from the
    local model folder (the packaged model is always there)."""
    emb = conn.info(name).get("embedding") or {}
    model = str(emb.get("model"))
    try:
        folder = read_folder(resolve_model(model, allow_download=False))
        specials = folder.count_tokens([""])[0]
        length = folder.token_counter()
    except VecDBError as exc:
        raise CommandError(
            f"cannot size chunks in tokens of model {model!r}: {exc}. Run ingest where the model is "
            "available locally"
        ) from exc
    window = int(emb.get("max_seq_length") or folder.max_seq_length)
    prompt = str(emb.get("document_prompt") or "")
    budget = window - specials - (length(prompt) if prompt else 0)
    if budget < 1:
        raise CommandError(f"model {model!r}: a window of {window} tokens leaves no room for text")
    return length, budget


def _ingest(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        if args.chunk_size is not None:  # bad sizes: before anything is created
            split_text("", args.chunk_size, args.chunk_overlap or 0)
        documents = discover(args.paths, args.glob)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    pattern = None if args.glob is None else glob_regex(args.glob)
    _ensure_text_collection(conn, args.collection, args.model)
    length, budget = _token_budget(conn, args.collection)
    chunk_size = budget if args.chunk_size is None else args.chunk_size
    if chunk_size > budget:
        raise CommandError(
            f"--chunk-size {chunk_size} is over the {budget} tokens the model's window leaves for text: "
            "the model would cut each chunk short (give at most that, or a collection with a larger "
            "max_seq_length)"
        )
    chunk_overlap = chunk_size // 8 if args.chunk_overlap is None else args.chunk_overlap
    try:
        split_text("", chunk_size, chunk_overlap)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    progress = _Progress(len(documents), out, quiet=args.quiet)
    try:
        summary = ingest(
            conn.collection(args.collection),
            documents,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length=length,
            delete_missing=args.delete_missing,
            in_scope=None if pattern is None else (lambda source: pattern.fullmatch(source) is not None),
            on_file=progress.update,
        )
    except ValueError as exc:  # chunk sizes
        raise CommandError(str(exc)) from exc
    finally:
        progress.close()
    for failed in summary.failed:
        err.write(f"failed: {failed.source}: {failed.error}\n")
    out.write(f"{args.collection}: {summary.line()}\n")
    return 1 if summary.failed else 0


class _Progress:
    """A bar (files, with chunks written) on a terminal; a line per changed file otherwise."""

    def __init__(self, total: int, out: TextIO, *, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.chunks = 0
        self.bar: Any = None
        if not quiet and out.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", file=out, dynamic_ncols=True)

    def update(self, rep: FileReport) -> None:
        self.chunks += rep.chunks if rep.status in ("added", "changed") else 0
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.chunks} chunks written", refresh=False)
            self.bar.update(1 if rep.status != "removed" else 0)
        elif (
            not self.quiet
            and rep.status not in ("unchanged", "failed")
            and (rep.chunks or rep.removed_chunks)
        ):
            detail = (
                f"{rep.chunks} chunks" if rep.status in ("added", "changed") else f"-{rep.removed_chunks}"
            )
            self.out.write(f"{rep.status} {rep.source} ({detail})\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---- sources, search, collections ----------------------------------------------------------------------


def _table(rows: list[list[str]], header: list[str], out: TextIO) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in [header, ["-" * w for w in widths], *rows]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _sources(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    col = conn.collection(args.collection)
    if args.action == "list":
        if args.source:
            raise CommandError("sources list takes no source names")
        infos = col.list_sources()
        _table([[s.source, str(s.count)] for s in infos], ["source", "records"], out)
        return 0
    if not args.source:
        raise CommandError("sources delete needs the sources to delete")
    for source in args.source:
        out.write(f"deleted {source}: {col.delete(source=source)} records\n")
    return 0


def _snippet(text: str | None, width: int = 70) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _search(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    flt = json_flag(args.filter, "--filter")
    hits = conn.collection(args.collection).search(
        texts=[args.query],
        k=args.k,
        filter=flt,
        mode=args.mode,
        text_filter=json_flag(args.text_filter, "--text-filter"),
        fusion=json_flag(args.fusion, "--fusion"),
    )[0]
    if args.json:
        rows_json = [
            {"id": h.id, "score": float(h.score), "source": h.source, "text": h.text, "metadata": h.metadata}
            for h in hits
        ]
        out.write(json.dumps(rows_json, ensure_ascii=False) + "\n")
        return 0
    rows = [
        [str(i + 1), h.id, f"{h.score:.3f}", h.source or "", _snippet(h.text)] for i, h in enumerate(hits)
    ]
    _table(rows, ["#", "id", "score", "source", "text"], out)
    return 0


def _collections(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.action == "list":
        rows = []
        for name in conn.list_collections():
            info = conn.info(name)
            model = (info.get("embedding") or {}).get("model", "")
            rows.append([name, str(info["count"]), str(info["dim"]), info["metric"], model])
        _table(rows, ["name", "records", "dim", "metric", "model"], out)
        return 0
    if not args.name:
        raise CommandError(f"collections {args.action} needs a name")
    if args.action == "drop":
        conn.drop_collection(args.name)
        out.write(f"dropped {args.name}\n")
        return 0
    index = json_flag(args.index, "--index")
    embedding = None if args.no_model else ({"model": args.model} if args.model else {})
    text_index = json_flag(args.text_index, "--text-index")
    conn.create_collection(
        args.name, dim=args.dim, metric=args.metric, index=index, embedding=embedding, text_index=text_index
    )
    info = conn.info(args.name)
    out.write(f"created {args.name}: dim {info['dim']}, {info['metric']}, index {info['index']['type']}\n")
    return 0
