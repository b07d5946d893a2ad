"""Second-stage checks of a semantic cache candidate: ``verify(prompt, candidate) -> bool``.

A vector match says two prompts are *about* the same thing; it does not say they *ask* the same thing.
Sentence embeddings barely move when a number changes ("10 miles" / "10 km"), when a negation is added
("safe" / "unsafe") or when two content words swap roles ("miles to km" / "km to miles"): those pairs score
0.98-0.99 with all-MiniLM-L6-v2. A verifier sees the new prompt's embedded text and the cached one's and
returns True to accept the hit; False turns it into a miss.

- ``guard`` (the default): cheap and lexical (~20 us). It rejects a candidate when the two texts differ in
  their numbers (digits or number words), in negation (``not``, ``never``, ``n't``..., or a word that is
  the other text's word with a negating prefix: ``unsafe`` / ``safe``), in their named entities
  (each has a capitalized word, inside a sentence, that the other lacks), or in the order of the content
  words when they use nearly the same ones and exactly two of those swapped places (roles swapped).
- ``CrossEncoderVerifier(path)``: a sentence-transformers cross-encoder loaded from a local folder (never
  the network), accepting pairs it scores at least ``threshold``. Optional: it needs
  ``sentence-transformers`` in the client's environment.
- ``accept_all``: no second stage.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CrossEncoderVerifier", "Verifier", "accept_all", "guard", "guard_reason"]

#: ``verify(prompt, candidate)``: True accepts the cached candidate for the prompt (both embedded texts).
Verifier = Callable[[str, str], bool]

_WORD = re.compile(r"\d+(?:[.,:/]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)?")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_NUMBER_WORDS = _wordset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million billion trillion first second third fourth fifth sixth seventh eighth ninth tenth half "
    "twice double triple dozen"
)
_NEGATIONS = _wordset("not no never none nobody nothing neither nor cannot without nowhere hardly barely")
_NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non", "non-")
_STOPWORDS = _wordset(
    """a an the and or but if then so to of in on at by for with from into onto about as than that this
    these those it its it's is are was were be been being am do does did done doing have has had having
    will would shall should can could may might must i me my mine we us our you your yours he him his she
    her they them their what which who whom whose when where why how there here also just very too
    s t please tell give get some any all each every other another such own same up down out over off
    again further once more most much many few lot way thing things say said says"""
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


@functools.lru_cache(maxsize=8192)
def _stem(word: str) -> str:
    """A plural's singular, roughly: ``cities`` -> ``city``, ``boxes`` -> ``box``, ``ounces`` -> ``ounce``."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        return w[:-2]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes", "zes")) and len(w) > 4:
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        return w[:-1]
    return w


def _numbers(words: list[str]) -> list[str]:
    out = []
    for w in words:
        lw = w.lower()
        if lw[0].isdigit():
            out.append(lw.replace(",", ""))
        elif lw in _NUMBER_WORDS:
            out.append(lw)
    return sorted(out)


def _negations(words: list[str]) -> int:
    return sum(1 for w in words if w.lower() in _NEGATIONS or w.lower().endswith(("n't", "n\u2019t")))


def _prefix_negated(a: set[str], b: set[str]) -> bool:
    """A word of ``a`` is a word of ``b`` with a negating prefix (``unsafe`` / ``safe``), or the reverse."""
    for x, y in ((a, b), (b, a)):
        for w in x - y:
            for p in _NEG_PREFIXES:
                if w.startswith(p) and len(w) - len(p) >= 3 and w[len(p) :] in y and w[len(p) :] not in x:
                    return True
    return False


def _entities(text: str) -> set[str]:
    """Capitalized words not at the start of a sentence (names, places, products), lower-cased."""
    out = set()
    for m in _WORD.finditer(text):
        w = m.group()
        if not w[0].isupper() or w.lower() in _STOPWORDS:
            continue
        k = m.start() - 1
        while k >= 0 and text[k].isspace():
            k -= 1
        if k < 0 or text[k] in ".?!:;\n\"'(":
            continue
        out.add(_stem(w))
    return out


@dataclass(frozen=True, slots=True)
class _Features:
    numbers: list[str]
    negations: int
    lower: set[str]
    entities: set[str]
    stems: set[str]
    content: list[str]


@functools.lru_cache(maxsize=4096)
def _features(text: str) -> _Features:
    """What the guard compares, per text (memoized: a cached entry is checked against many prompts)."""
    words = _words(text)
    return _Features(
        _numbers(words),
        _negations(words),
        {w.lower() for w in words},
        _entities(text),
        {_stem(w) for w in words},
        _content(words),
    )


def _content(words: list[str]) -> list[str]:
    return [_stem(w) for w in words if w.lower() not in _STOPWORDS and not w[0].isdigit()]


def _order_differs(a: list[str], b: list[str]) -> bool:
    """The texts use (nearly) the same content words, but those both use once come in another order: roles
    swapped ("miles to km" / "km to miles"). Reworded paraphrases that also reorder (common in MRPC, where
    an order check alone cost more paraphrases than it saved wrong hits) change words too."""
    union = set(a) | set(b)
    if not union or len(set(a) ^ set(b)) > 0.25 * len(union):
        return False
    shared = {w for w in set(a) & set(b) if a.count(w) == 1 and b.count(w) == 1}
    seq_a = [w for w in a if w in shared]
    pos_b = {w: i for i, w in enumerate(b) if w in shared}
    ranks = [pos_b[w] for w in seq_a]
    # Two words exchanged, the rest in place: a swap of roles. A clause or word moved elsewhere (a rotation:
    # more than two out of place) is how paraphrases reorder, and MRPC has many of them.
    return sum(r != s for r, s in zip(ranks, sorted(ranks), strict=True)) == 2


def guard_reason(prompt: str, candidate: str) -> str | None:
    """Why ``guard`` rejects ``candidate`` for ``prompt`` (``numbers``, ``negation``, ``entities``,
    ``order``), or None when it accepts it. Texts equal after case folding are always accepted."""
    if prompt.casefold().split() == candidate.casefold().split():
        return None
    fa, fb = _features(prompt), _features(candidate)
    if fa.numbers != fb.numbers:
        return "numbers"
    if fa.negations != fb.negations or _prefix_negated(fa.lower, fb.lower):
        return "negation"
    if (fa.entities - fb.stems) and (fb.entities - fa.stems):  # a name replaced (dropping one is rewording)
        return "entities"
    if _order_differs(fa.content, fb.content):
        return "order"
    return None


def guard(prompt: str, candidate: str) -> bool:
    """The default verifier: accept unless numbers, negations, entities or content-word order differ."""
    return guard_reason(prompt, candidate) is None


def accept_all(prompt: str, candidate: str) -> bool:
    """No second stage: every vector match above the threshold is a hit."""
    return True


class CrossEncoderVerifier:
    """Accept a candidate when a cross-encoder, loaded from the local folder ``path``, scores the pair at
    least ``threshold`` (on the model's own scale: pick it on your data). ``also_guard`` runs ``guard``
    first (cheap rejections never reach the model). The model loads on first use with the hub offline;
    a missing folder is a ``FileNotFoundError`` at construction, a missing ``sentence-transformers`` an
    ``ImportError`` at first use."""

    def __init__(self, path: str | Path, threshold: float = 0.5, also_guard: bool = True) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"no cross-encoder model in {self.path} (config.json missing)")
        self.threshold = threshold
        self.also_guard = also_guard
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(str(self.path), device="cpu")
        return self._model

    def score(self, prompt: str, candidate: str) -> float:
        return float(self._load().predict([(prompt, candidate)])[0])

    def __call__(self, prompt: str, candidate: str) -> bool:
        if self.also_guard and not guard(prompt, candidate):
            return False
        return self.score(prompt, candidate) >= self.threshold
