"""Fusing ranked lists (hybrid search): reciprocal rank fusion or a weighted sum of normalized scores.

Pure functions over each branch's ranked candidates (best first), keyed by whatever identifies a record
(labels in the engine, ids in the cluster), so the engine and the cluster fuse the same way.

- ``rrf`` (default): ``score = sum over branches of 1 / (k + rank)``, rank 1-based; ``k`` = 60 (Cormack,
  Clarke and Buettcher, SIGIR 2009, the constant Elasticsearch, OpenSearch and Milvus default to).
- ``weighted``: each branch's scores min-max normalized to [0, 1] over its candidates for that query
  (for ``l2`` distances, lower is better: ``(max - d) / (max - min)``; all equal: 1), then
  ``score = alpha * vector + (1 - alpha) * text``, a branch that missed the record adding 0.

Ties (equal fused scores) are broken by the key, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from vecdb.errors import InvalidArgumentError

__all__ = ["DEFAULT_CANDIDATES", "RRF_K", "Fusion", "fuse", "parse_fusion"]

#: The RRF constant from the paper (and every peer's default).
RRF_K = 60
#: Candidates per branch: at least this many, and never fewer than the search's k.
DEFAULT_CANDIDATES = 50

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Fusion:
    method: Literal["rrf", "weighted"] = "rrf"
    k: int = RRF_K
    alpha: float = 0.5
    candidates: int | None = None  # None: max(k, DEFAULT_CANDIDATES)

    def depth(self, k: int) -> int:
        """Candidates per branch for a search of ``k`` hits."""
        return self.candidates if self.candidates is not None else max(k, DEFAULT_CANDIDATES)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_fusion(raw: Any, k: int, max_k: int) -> Fusion:
    """The fusion options of a hybrid search of ``k`` hits (``max_k``: the largest depth allowed).
    Raises InvalidArgumentError (field ``fusion.<key>``) for an unknown key, a key of the other method,
    a bad value."""
    if raw is None:
        return Fusion()
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"fusion must be an object, got {raw!r}", field="fusion")
    method = raw.get("method", "rrf")
    if method not in ("rrf", "weighted"):
        raise InvalidArgumentError(
            f"fusion.method must be 'rrf' or 'weighted', got {method!r}", field="fusion.method"
        )
    allowed = {"method", "candidates", "k" if method == "rrf" else "alpha"}
    extra = sorted(map(str, set(raw) - allowed))
    if extra:
        raise InvalidArgumentError(
            f"fusion key(s) {extra} do not apply to method {method!r}; it takes {sorted(allowed)}",
            field=f"fusion.{extra[0]}",
        )
    rrf_k = raw.get("k", RRF_K)
    if not _int(rrf_k) or rrf_k < 1:
        raise InvalidArgumentError(f"fusion.k must be an integer >= 1, got {rrf_k!r}", field="fusion.k")
    alpha = raw.get("alpha", 0.5)
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(
            f"fusion.alpha must be a number in [0, 1], got {alpha!r}", field="fusion.alpha"
        )
    cand = raw.get("candidates")
    if cand is not None and (not _int(cand) or cand < k or cand > max_k):
        raise InvalidArgumentError(
            f"fusion.candidates must be an integer from k ({k}) to {max_k}, got {cand!r}",
            field="fusion.candidates",
        )
    return Fusion(method, int(rrf_k), float(alpha), cand)


def _normalized(scores: Sequence[float], lower_better: bool) -> list[float]:
    if not scores:
        return []
    hi, lo = max(scores), min(scores)
    if hi == lo:
        return [1.0] * len(scores)
    if lower_better:
        return [(hi - s) / (hi - lo) for s in scores]
    return [(s - lo) / (hi - lo) for s in scores]


def fuse(
    vector: Sequence[tuple[K, float]],
    text: Sequence[tuple[K, float]],
    fusion: Fusion,
    k: int,
    *,
    lower_better: bool = False,
) -> list[tuple[K, float, dict[str, dict[str, float]]]]:
    """The best ``k`` of the two ranked candidate lists (each best first), fused: (key, fused score,
    explain) with explain ``{"vector": {"rank", "score"}, "text": {...}}`` for the branches that hold the
    key. ``lower_better``: the vector branch's scores are distances."""
    fused: dict[K, float] = {}
    if fusion.method == "rrf":
        for rows in (vector, text):
            for rank, (key, _) in enumerate(rows, 1):
                fused[key] = fused.get(key, 0.0) + 1.0 / (fusion.k + rank)
    else:
        for rows, weight, lower in (
            (vector, fusion.alpha, lower_better),
            (text, 1.0 - fusion.alpha, False),
        ):
            norm = _normalized([s for _, s in rows], lower)
            for (key, _), n in zip(rows, norm, strict=True):
                fused[key] = fused.get(key, 0.0) + weight * n
    order = sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]
    # Explain the k kept only (a key's rank in a branch: its last place there, as keys are unique).
    place = [{key: rank for rank, (key, _) in enumerate(rows, 1)} for rows in (vector, text)]
    out = []
    for key, score in order:
        why: dict[str, dict[str, float]] = {}
        for branch, rows, where in (("vector", vector, place[0]), ("text", text, place[1])):
            at = where.get(key)
            if at is not None:
                why[branch] = {"rank": at, "score": float(rows[at - 1][1])}
        out.append((key, score, why))
    return out
