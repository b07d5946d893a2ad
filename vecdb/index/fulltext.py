"""The full-text (BM25) index: tantivy's official Python bindings behind one small class.

- ``TextIndexSpec``: what a collection's ``text_index`` option holds (tokenizer, stemming, stop words,
  BM25 parameters), frozen; ``parse_text_index_spec`` validates the JSON form.
- ``TextFilter``: the parsed full-text filter language (``$contains``, ``$not_contains``, ``$and``,
  ``$or``); ``parse_text_filter`` validates it.
- ``FullTextIndex``: documents keyed by int64 label in a RAM tantivy index; BM25 top-n, filters as sets of
  labels. Not thread-safe: its owner serializes writes against reads (``commit`` makes pending writes
  visible and is the only call that changes what searches see).

Tokenizers: ``standard`` (tantivy's simple tokenizer: Unicode letters and digits; lowercased; optional
English stop words and Porter stemming; tokens over 40 bytes dropped), ``whitespace`` (split on white
space, lowercased), ``jieba`` (Chinese: ``jieba.cut_for_search`` in Python, the tokens lowercased and
indexed by tantivy's whitespace tokenizer). tantivy fixes BM25's k1 = 1.2 and b = 0.75 at compile time:
other values are refused (``InvalidConfigError``), never accepted and ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from vecdb.errors import InvalidConfigError, InvalidFilterError

__all__ = [
    "BM25_B",
    "BM25_K1",
    "FullTextIndex",
    "TextAnd",
    "TextContains",
    "TextFilter",
    "TextIndexSpec",
    "TextOr",
    "Tokenizer",
    "parse_text_filter",
    "parse_text_index_spec",
]

#: tantivy's BM25 constants (``tantivy::query::bm25``: K1 = 1.2, B = 0.75), not settable at run time.
BM25_K1 = 1.2
BM25_B = 0.75

#: The longest query string a ``$contains`` / ``$not_contains`` or a text query may hold (characters).
MAX_FILTER_TEXT = 4096
#: The deepest nesting of ``$and`` / ``$or`` in a text filter.
MAX_FILTER_DEPTH = 16

_LABEL = "label"
_TEXT = "text"
_ANALYZER = "vecdb"
#: Tokens longer than this (bytes) are dropped by the standard tokenizer (tantivy's default).
_MAX_TOKEN = 40
#: The writer's memory budget: it flushes a segment when the buffered documents reach it.
_WRITER_HEAP = 32_000_000


class TextIndexSpec(BaseModel):
    """A collection's full-text index: ``{}`` means every default."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tokenizer: Literal["standard", "jieba", "whitespace"] = "standard"
    stemming: bool = False
    stopwords: Literal["english"] | None = None
    k1: float = BM25_K1
    b: float = BM25_B


def parse_text_index_spec(raw: Any) -> TextIndexSpec | None:
    """The spec from its JSON form (None: no full-text index). Raises InvalidConfigError naming the field."""
    if raw is None:
        return None
    if isinstance(raw, TextIndexSpec):
        return raw
    if not isinstance(raw, dict):
        raise InvalidConfigError(f"text_index must be an object or null, got {raw!r}", field="text_index")
    raw = {k: (float(v) if k in ("k1", "b") and type(v) is int else v) for k, v in raw.items()}
    try:
        spec = TextIndexSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "text_index"
        raise InvalidConfigError(f"text_index.{where}: {err['msg']}", field=f"text_index.{where}") from None
    if spec.k1 != BM25_K1 or spec.b != BM25_B:
        raise InvalidConfigError(
            f"text_index: tantivy's BM25 uses k1 = {BM25_K1} and b = {BM25_B}, fixed when tantivy is "
            f"compiled; other values (k1 = {spec.k1}, b = {spec.b}) cannot be honoured (docs/search.md)",
            field="text_index.k1" if spec.k1 != BM25_K1 else "text_index.b",
        )
    if spec.tokenizer != "standard" and (spec.stemming or spec.stopwords is not None):
        raise InvalidConfigError(
            "text_index: stemming and stopwords apply to the standard tokenizer only, "
            f"not {spec.tokenizer!r}",
            field="text_index.stemming" if spec.stemming else "text_index.stopwords",
        )
    return spec


# ---- the text filter language ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextContains:
    """Records whose text holds ``text``'s tokens (a phrase; for jieba, all of them); ``negate``:
    records without them (texts absent included)."""

    text: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class TextAnd:
    parts: tuple[TextFilter, ...]


@dataclass(frozen=True, slots=True)
class TextOr:
    parts: tuple[TextFilter, ...]


TextFilter = TextContains | TextAnd | TextOr


def parse_text_filter(raw: Any) -> TextFilter | None:
    """``{"$contains": str}``, ``{"$not_contains": str}``, ``{"$and": [...]}``, ``{"$or": [...]}``; None
    (or not given) for no filter. Raises InvalidFilterError naming what is wrong."""
    if raw is None:
        return None
    return _parse_tf(raw, 0)


def _parse_tf(raw: Any, depth: int) -> TextFilter:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidFilterError(f"text_filter is nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(raw, dict) or len(raw) != 1:
        raise InvalidFilterError(
            'a text_filter is an object with exactly one operator: {"$contains": str}, '
            f'{{"$not_contains": str}}, {{"$and": [...]}} or {{"$or": [...]}}; got {raw!r}'
        )
    ((op, arg),) = raw.items()
    if op in ("$contains", "$not_contains"):
        if not isinstance(arg, str) or not arg.strip():
            raise InvalidFilterError(f"text_filter {op} takes a non-empty string, got {arg!r}", operator=op)
        if len(arg) > MAX_FILTER_TEXT:
            raise InvalidFilterError(
                f"text_filter {op} string is longer than {MAX_FILTER_TEXT} characters", operator=op
            )
        return TextContains(arg, negate=op == "$not_contains")
    if op in ("$and", "$or"):
        if not isinstance(arg, list) or not arg:
            raise InvalidFilterError(f"text_filter {op} takes a non-empty list of text filters", operator=op)
        parts = tuple(_parse_tf(p, depth + 1) for p in arg)
        return TextAnd(parts) if op == "$and" else TextOr(parts)
    raise InvalidFilterError(
        f"unknown text_filter operator {op!r}: use $contains, $not_contains, $and or $or", operator=str(op)
    )


# ---- tokenizers ------------------------------------------------------------------------------------

_jieba_lock = threading.Lock()
_jieba: dict[str, Any] = {}  # "tokenizer": the one jieba tokenizer, once loaded


def _jieba_tokenizer() -> Any:
    """One jieba tokenizer per process, its dictionary loaded without jieba's cache file (jieba writes
    it to the system temp directory; vecdb writes nothing outside its data directory) and without its
    stderr logging."""
    with _jieba_lock:
        if "tokenizer" not in _jieba:
            import jieba  # type: ignore[import-untyped]

            logger = logging.getLogger("jieba")
            logger.handlers.clear()
            logger.setLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            tok.FREQ, tok.total = tok.gen_pfdict(tok.get_dict_file())
            tok.initialized = True
            _jieba["tokenizer"] = tok
        return _jieba["tokenizer"]


class Tokenizer:
    """Turns texts into what tantivy indexes: for jieba the space-joined tokens (tantivy then splits on
    white space), otherwise the text itself (tantivy's analyzer tokenizes it)."""

    def __init__(self, spec: TextIndexSpec) -> None:
        import tantivy

        self.spec = spec
        self.pretokenized = spec.tokenizer == "jieba"
        base = tantivy.Tokenizer.simple() if spec.tokenizer == "standard" else tantivy.Tokenizer.whitespace()
        builder = tantivy.TextAnalyzerBuilder(base)
        if spec.tokenizer == "standard":
            builder = builder.filter(tantivy.Filter.remove_long(_MAX_TOKEN))
        builder = builder.filter(tantivy.Filter.lowercase())
        if spec.stopwords is not None:
            builder = builder.filter(tantivy.Filter.stopword(spec.stopwords))
        if spec.stemming:
            builder = builder.filter(tantivy.Filter.stemmer("english"))
        self.analyzer = builder.build()
        self._jieba = _jieba_tokenizer() if self.pretokenized else None

    def prepare(self, text: str) -> str:
        """What to hand tantivy for ``text``."""
        if self._jieba is None:
            return text
        return " ".join(t for t in self._jieba.cut_for_search(text) if t.strip())

    def terms(self, text: str) -> list[str]:
        """The indexed terms of ``text``, in order (what a query or a filter looks up)."""
        return list(self.analyzer.analyze(self.prepare(text)))


# ---- the index -------------------------------------------------------------------------------------


class FullTextIndex:
    """Documents (label -> text) in a RAM tantivy index, scored by BM25."""

    def __init__(self, spec: TextIndexSpec) -> None:
        import tantivy

        self._tantivy = tantivy
        self.spec = spec
        self.tokenizer = Tokenizer(spec)
        sb = tantivy.SchemaBuilder()
        sb.add_integer_field(_LABEL, stored=False, indexed=True, fast=True)  # i64: see FACTS (u64 fails)
        sb.add_text_field(_TEXT, stored=False, tokenizer_name=_ANALYZER, index_option="position")
        self._schema = sb.build()
        self._index = tantivy.Index(self._schema)
        self._index.register_tokenizer(_ANALYZER, self.tokenizer.analyzer)
        self._writer = self._index.writer(_WRITER_HEAP, 1)
        self._dirty = False
        self._searcher = self._index.searcher()
        self.documents = 0

    def add(self, labels: Iterable[int], texts: Iterable[str]) -> None:
        """Index ``texts`` (already ``Tokenizer.prepare``d) under ``labels`` (new labels only)."""
        doc = self._tantivy.Document
        for label, text in zip(labels, texts, strict=True):
            self._writer.add_document(doc(label=int(label), text=text))
            self.documents += 1
            self._dirty = True

    def remove(self, labels: Iterable[int]) -> None:
        """Drop the documents of ``labels`` (each must be indexed: the caller knows which are)."""
        for label in labels:
            self._writer.delete_documents_by_term(_LABEL, int(label))
            self.documents -= 1
            self._dirty = True

    def commit(self) -> None:
        """Make every add and remove so far visible to searches (cheap when there is nothing new)."""
        if self._dirty:
            self._writer.commit()
            self._index.reload()
            self._searcher = self._index.searcher()
            self._dirty = False

    @property
    def dirty(self) -> bool:
        return self._dirty

    def query(self, text: str) -> Any:
        """The BM25 query for ``text``: any of its terms (None when it has none)."""
        terms = self.tokenizer.terms(text)
        if not terms:
            return None
        q = self._tantivy.Query
        return q.boolean_query(
            [(self._tantivy.Occur.Should, q.term_query(self._schema, _TEXT, t)) for t in terms]
        )

    def search(
        self, query: Any, n: int, allowed: Any = None, tiebreak: Callable[[int], Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` (labels, BM25 scores) for ``query``, best first, equal scores ordered by
        ``tiebreak(label)`` (default: the label), only labels in ``allowed`` (a set-like of labels, or
        None for all). Exact: it reads deeper until ``n`` admitted hits are found and every hit tied
        with the last of them is in, or the matches run out."""
        empty = np.empty(0, np.int64), np.empty(0, np.float32)
        if query is None or n <= 0:
            return empty
        s = self._searcher
        total = max(int(s.num_docs), 1)
        # The bindings score every matching document whatever the limit (their collector does no
        # top-k pruning), so a pass costs about the same at n + 1 as at 4n: read 4n at once, which
        # holds most runs of tied scores (duplicate texts) and admitted hits, so a second pass is rare.
        depth = min(max(4 * n, 64), total)
        pairs: list[tuple[float, int]] | None
        while True:
            hits = s.search(query, depth, count=False).hits
            if allowed is None:
                pairs = None  # labels are read below, for the hits kept only
                last_kept = hits[n - 1][0] if len(hits) >= n else None
            else:
                labels = _labels(s, [a for _, a in hits])
                pairs = [(float(sc), lb) for (sc, _), lb in zip(hits, labels, strict=True) if lb in allowed]
                last_kept = pairs[n - 1][0] if len(pairs) >= n else None
            if len(hits) < depth or depth >= total:
                break
            if last_kept is not None and hits[-1][0] < last_kept:
                break  # n admitted hits, and the last one read scores below the n-th: no tie left out
            depth = min(depth * 4, total)
        if pairs is None:  # the n best and their ties (hits come best first)
            m = n
            while m < len(hits) and hits[m][0] >= hits[n - 1][0]:
                m += 1
            hits = hits[:m]
            labels = _labels(s, [a for _, a in hits])
            pairs = [(float(sc), lb) for (sc, _), lb in zip(hits, labels, strict=True)]
        elif len(pairs) > n:  # best first already: only the n-th's ties need the tiebreak's order
            last = pairs[n - 1][0]
            pairs = [p for p in pairs if p[0] >= last]
        if len(pairs) > 1:  # best first, equal scores by tiebreak (decorated: no per-item lambda)
            keys = map(tiebreak, [lb for _, lb in pairs]) if tiebreak else [lb for _, lb in pairs]
            pairs = [p for _, _, p in sorted(zip([-sc for sc, _ in pairs], keys, pairs, strict=True))]
        pairs = pairs[:n]
        return (
            np.fromiter((lb for _, lb in pairs), np.int64, len(pairs)),
            np.fromiter((sc for sc, _ in pairs), np.float32, len(pairs)),
        )

    def matching(self, flt: TextFilter, universe: Any) -> Any:
        """The labels among ``universe`` (a pyroaring bitmap of live labels) that ``flt`` admits."""
        if isinstance(flt, TextAnd):
            out = universe
            for p in flt.parts:
                out = out & self.matching(p, universe)
            return out
        if isinstance(flt, TextOr):
            out = universe & type(universe)()
            for p in flt.parts:
                out = out | self.matching(p, universe)
            return out
        found = self._contains(flt.text) & universe
        return universe - found if flt.negate else found

    def _contains(self, text: str) -> Any:
        from pyroaring import BitMap64

        terms = self.tokenizer.terms(text)
        if not terms:
            raise InvalidFilterError(
                f"text_filter string {text!r} has no searchable terms for the {self.spec.tokenizer} "
                "tokenizer (only stop words or punctuation)"
            )
        q = self._tantivy.Query
        if len(terms) == 1:
            query = q.term_query(self._schema, _TEXT, terms[0])
        elif self.tokenizer.pretokenized:
            query = q.boolean_query(
                [(self._tantivy.Occur.Must, q.term_query(self._schema, _TEXT, t)) for t in terms]
            )
        else:
            words: list[str | tuple[int, str]] = list(terms)
            query = q.phrase_query(self._schema, _TEXT, words)
        s = self._searcher
        total = s.num_docs
        if total == 0:
            return BitMap64()
        hits = s.search(query, total, count=False).hits
        return BitMap64(_labels(s, [a for _, a in hits]))

    @property
    def searched_documents(self) -> int:
        """Documents visible to searches (after the last commit)."""
        return int(self._searcher.num_docs)


def _labels(searcher: Any, addresses: list[Any]) -> list[int]:
    """The labels of documents (their i64 fast field: no stored document is read)."""
    values = searcher.fast_field_values(_LABEL, addresses)
    out = [v for v in values if isinstance(v, int)]
    if len(out) != len(values):
        raise RuntimeError("a full-text document has no label")  # every document is added with one
    return out
