"""Finding documents under the given paths and reading them as text.

Text files (``.txt``, ``.md``, ``.rst``) must be UTF-8 (a BOM is allowed) without NUL bytes; HTML's text
is extracted with BeautifulSoup (scripts and styles dropped); PDF needs the ``pdf`` extra (pypdf). A file
that cannot be read as text raises ``UnreadableFileError`` with the reason: the caller reports and skips it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SUPPORTED_SUFFIXES", "Document", "UnreadableFileError", "discover", "read_text"]

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".rst", ".html", ".htm", ".pdf"})


class UnreadableFileError(Exception):
    """A file that is not a readable document (binary, not UTF-8, broken PDF, missing extra)."""


@dataclass(frozen=True, slots=True)
class Document:
    """A file to ingest: its path and its source name (the path relative to the root it was found under,
    with ``/`` separators)."""

    path: Path
    source: str


def discover(paths: list[Path], glob: str | None = None) -> list[Document]:
    """The supported files under ``paths`` (files or folders), sorted by source, each once.

    ``glob`` filters by the source name, as shells do: ``*`` and ``?`` stay within one folder, ``**/``
    spans any number of folders (``**/*.md`` matches ``a.md`` and ``x/y/a.md``). A file given directly is
    its own root (its source is its name). Hidden files and folders (a name starting with ``.``) are
    skipped. Raises FileNotFoundError for a path that does not exist, ValueError for a file given directly
    whose type is not supported, and when two files get one source.
    """
    pattern = None if glob is None else glob_regex(glob)
    found: dict[str, Path] = {}
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        if root.is_file():
            if root.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise ValueError(
                    f"{root} is not a supported document ({', '.join(sorted(SUPPORTED_SUFFIXES))})"
                )
            candidates = [(root, root.name)]
        else:
            candidates = [
                (p, p.relative_to(root).as_posix())
                for p in root.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            ]
        for path, source in candidates:
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if pattern is not None and not pattern.fullmatch(source):
                continue
            other = found.get(source)
            if other is not None and other.resolve() != path.resolve():
                raise ValueError(f"{path} and {other} would both be source {source!r}")
            found[source] = path
    return [Document(path, source) for source, path in sorted(found.items())]


def glob_regex(glob: str) -> re.Pattern[str]:
    """A shell-style glob over ``/``-separated names as a regex: ``**/`` any folders (or none), ``**`` any
    text, ``*`` any text within a name, ``?`` one character within a name, ``[...]`` a character class."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            out.append(
                "[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]"
            )
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


def read_text(path: Path, data: bytes) -> str:
    """The text of a document, from its bytes. Raises UnreadableFileError."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_text(data)
    if b"\x00" in data:
        raise UnreadableFileError("binary content (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if suffix in (".html", ".htm"):
        return _html_text(text)
    return text


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _pdf_text(data: bytes) -> str:
    try:
        from pypdf import PdfReader
    except ImportError as exc:
        raise UnreadableFileError("PDF needs the pdf extra: pip install 'vecdb[pdf]'") from exc
    import io

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception as exc:  # pypdf raises many kinds on damaged files (AttributeError, TypeError...)
        raise UnreadableFileError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
