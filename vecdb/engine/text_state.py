"""The full-text index as derived state (``Derived``): a RAM tantivy index rebuilt by the open scan.

Why RAM and a rebuild rather than tantivy's own files: tantivy shows a write to searches only after a
commit, and a commit of its on-disk index fsyncs a new segment (measured 80-120 ms each here, whatever
the batch size); in RAM a commit costs milliseconds and is done lazily, by the first read after writes.
Indexing is fast (WikiQA's 18,820 sentences in 0.2 s), so the open scan rebuilds it. What is slow to
redo is Chinese segmentation (jieba: ~0.7 ms a sentence): for a ``jieba`` index the segmented text of
each record is checkpointed (``text.ckpt``, CRC-checked, tied to the store's uuid and the spec). A
label's text never changes (an upsert gets a new label), so the cache needs no op-log replay: records
it lacks (written after it, or all of them when it is missing or damaged) are segmented again at open.

Thread safety: ``apply`` runs under the collection's write side; reads call ``searchable()`` under the
read side, which commits pending writes (under this object's own lock, since readers run together).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vecdb.engine.derived import Change
from vecdb.errors import CorruptionError
from vecdb.index.fulltext import FullTextIndex, TextIndexSpec
from vecdb.storage import CollectionStore, StoredRecord, read_checkpoint, write_checkpoint

__all__ = ["TEXT_CHECKPOINT_FILE", "TextIndexState"]

log = logging.getLogger(__name__)

TEXT_CHECKPOINT_FILE = "text.ckpt"
#: Texts segmented ahead of writes kept at most (a refused write leaves its own behind).
WARM_MAX = 100_000


class TextIndexState:
    """A collection's ``FullTextIndex``: records with a (non-empty) text are its documents."""

    name = "text"

    def __init__(self, collection: str, path: Path, store: CollectionStore, spec: TextIndexSpec) -> None:
        self._collection = collection
        self._path = path
        self._store = store
        self.spec = spec
        self.index = FullTextIndex(spec)
        self._cached = spec.tokenizer == "jieba"
        #: jieba only: label -> its segmented text (what the checkpoint holds).
        self._tokens: dict[int, str] = {}
        self._pending: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        #: jieba only: texts segmented ahead of their write, outside the collection's locks (``warm``).
        self._warm: dict[str, str] = {}
        self._warm_lock = threading.Lock()
        self._written_seq: int | None = None
        self._changed = False

    # ---- Derived -----------------------------------------------------------------------------------

    def restore(self) -> bool:
        return False  # the RAM index is rebuilt from the open scan's texts

    def load(self, record: StoredRecord) -> None:
        if record.text:
            self._pending.append((record.label, record.text))

    def recover(self) -> None:
        cache = self._read_cache() if self._cached else {}
        labels = [lb for lb, _ in self._pending]
        prepared = [cache.get(lb) or self.index.tokenizer.prepare(t) for lb, t in self._pending]
        if self._cached:
            self._tokens = dict(zip(labels, prepared, strict=True))
            self._changed = len(cache) != len(self._tokens) or any(lb not in cache for lb in labels)
        self.index.add(labels, prepared)
        self.index.commit()
        self._pending = []

    def load_all(self) -> None:
        """Index every stored record (a text index added to an existing collection)."""
        for rec in self._store.iter_records():
            self.load(rec)
        self.recover()

    def apply(self, change: Change) -> None:
        gone = [r.label for r in change.removed if r.text]
        self.index.remove(gone)
        new = [(lb, r.text) for lb, r in zip(change.labels.tolist(), change.added, strict=True) if r.text]
        prepared = [self._prepared(t) for _, t in new]
        self.index.add([lb for lb, _ in new], prepared)
        if self._cached and (gone or new):
            for lb in gone:
                self._tokens.pop(lb, None)
            self._tokens.update(zip((lb for lb, _ in new), prepared, strict=True))
            self._changed = True

    @property
    def checkpoint_seq(self) -> int | None:
        return None  # rebuilt by the open scan; the jieba cache is keyed by immutable labels

    def prepare_checkpoint(self, seq: int, *, final: bool = False) -> Callable[[], None] | None:
        if not self._cached or not self._changed:
            return None
        labels = list(self._tokens)
        tokens = [self._tokens[lb] for lb in labels]
        self._changed = False
        meta = self._meta()

        def write() -> None:
            payload = orjson.dumps({"labels": labels, "tokens": tokens})
            write_checkpoint(self._path / TEXT_CHECKPOINT_FILE, seq, meta, np.frombuffer(payload, np.uint8))
            self._written_seq = seq

        return write

    def checkpoint_files(self) -> list[str]:
        return [TEXT_CHECKPOINT_FILE] if self._cached else []

    def warm(self, texts: list[str | None]) -> None:
        """Segment a batch's texts before its write takes the collection's locks (jieba costs ~0.7 ms a
        text: under the locks it would hold readers up); ``apply`` then takes them from here."""
        if not self._cached:
            return
        done = {t: self.index.tokenizer.prepare(t) for t in texts if t}
        with self._warm_lock:
            if len(self._warm) > WARM_MAX:  # left by writes refused after warming: drop them
                self._warm.clear()
            self._warm.update(done)

    def _prepared(self, text: str) -> str:
        if self._cached:
            with self._warm_lock:
                ready = self._warm.pop(text, None)
            if ready is not None:
                return ready
        return self.index.tokenizer.prepare(text)

    # ---- reads -------------------------------------------------------------------------------------

    def searchable(self) -> FullTextIndex:
        """The index with every applied write visible (call under the collection's read lock)."""
        if self.index.dirty:
            with self._lock:
                self.index.commit()
        return self.index

    def info(self) -> dict[str, Any]:
        return {**self.spec.model_dump(), "documents": self.index.documents}

    def drop_files(self) -> None:
        (self._path / TEXT_CHECKPOINT_FILE).unlink(missing_ok=True)

    # ---- the jieba cache ---------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {"store": self._store.uuid, "spec": self.spec.model_dump()}

    def _read_cache(self) -> dict[int, str]:
        try:
            ckpt = read_checkpoint(self._path / TEXT_CHECKPOINT_FILE)
            if ckpt.meta != self._meta():
                raise CorruptionError("written for another store or text index spec")
            data = orjson.loads(ckpt.payload.tobytes())
            labels, tokens = data["labels"], data["tokens"]
            if len(labels) != len(tokens):
                raise CorruptionError("labels and tokens differ in length")
            return {int(lb): str(t) for lb, t in zip(labels, tokens, strict=True)}
        except FileNotFoundError:
            return {}
        except (CorruptionError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "collection %s: text checkpoint unusable (%s); segmenting the texts again",
                self._collection,
                exc,
            )
            return {}
