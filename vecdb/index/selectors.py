"""FAISS ID selectors over label sets, kept alive together with the memory they point into."""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["LabelSelector"]


class LabelSelector:
    """Admits a set of labels (or, with ``negate``, every label but them).

    Backed by a bitmap over the label space (one bit per label up to the largest): built in one numpy
    pass, tested in O(1) by FAISS, and shareable by the ANN index and the delta in one search. The numpy
    buffer lives as long as this object; FAISS only holds a raw pointer into it.
    """

    def __init__(self, labels: np.ndarray, *, negate: bool = False) -> None:
        top = int(labels.max()) + 1 if len(labels) else 1
        mask = np.zeros(top, dtype=bool)
        mask[labels] = True
        self._bits = np.packbits(mask, bitorder="little")
        self._bitmap = faiss.IDSelectorBitmap(len(self._bits), faiss.swig_ptr(self._bits))
        self.selector: faiss.IDSelector = faiss.IDSelectorNot(self._bitmap) if negate else self._bitmap
        self.count = len(labels)
