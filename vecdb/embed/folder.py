"""What a sentence-transformers folder declares, read without torch: its modules, pooling, normalization,
window (``max_seq_length``) and fast tokenizer (``tokenizer.json``, through the ``tokenizers`` library).

The ONNX backend runs exactly this pipeline (tokenize, transformer, pool, normalize); the torch backend
loads the folder with sentence-transformers, and uses these readers only to count tokens.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.errors import InvalidConfigError

__all__ = ["ModelFolder", "TokenBatch", "read_folder"]

_POOLING_MODES = ("mean", "cls", "max")
#: Sentences padded to one length per batch: a batch is cut where the next sentence is this much longer.
_BUCKET_GROWTH = 1.25


@dataclass(frozen=True)
class TokenBatch:
    """Rows of one length bucket: their positions in the call's input, padded ids and mask."""

    rows: np.ndarray  # int64 positions in the input
    input_ids: np.ndarray  # (n, length) int64
    attention_mask: np.ndarray  # (n, length) int64


@dataclass
class ModelFolder:
    """A sentence-transformers folder as the ONNX pipeline needs it."""

    path: Path
    modules: list[str]  # module types in order, e.g. ["Transformer", "Pooling", "Normalize"]
    max_seq_length: int  # the model's window in tokens, special tokens included
    positions: int  # the most tokens the transformer takes (max_position_embeddings)
    pooling: str | None  # "mean", "cls", "max"; None when the folder has no (supported) Pooling module
    normalize: bool
    dim: int | None
    tokenizer_file: Path | None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizers: dict[int, Any] = {}

    def onnx_unsupported(self) -> str | None:
        """Why the ONNX pipeline cannot run this folder, or None when it can."""
        if self.tokenizer_file is None:
            return "it has no tokenizer.json (fast tokenizer)"
        extra = [m for m in self.modules if m not in ("Transformer", "Pooling", "Normalize")]
        if extra:
            return f"it has modules the ONNX pipeline does not run ({', '.join(extra)})"
        if self.pooling is None:
            return "its pooling is not one of mean, cls, max"
        return None

    def tokenizer(self, max_length: int) -> Any:
        """A ``tokenizers.Tokenizer`` truncating to ``max_length`` tokens, not padding (one per length)."""
        if self.tokenizer_file is None:
            raise InvalidConfigError(
                f"model folder {self.path} has no tokenizer.json", field="embedding.model"
            )
        with self._lock:
            tok = self._tokenizers.get(max_length)
            if tok is None:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(self.tokenizer_file))
                tok.no_padding()
                tok.enable_truncation(max_length)
                self._tokenizers[max_length] = tok
            return tok

    def count_tokens(self, texts: list[str], max_length: int = 1 << 20) -> list[int]:
        """Tokens per text, special tokens included, as the model would see them (up to ``max_length``)."""
        return [len(e.ids) for e in self.tokenizer(max_length).encode_batch(texts)]

    def token_counter(self) -> Callable[[str], int]:
        """A function counting a text's tokens without the special ones, untruncated."""
        tokenizer = self.tokenizer(1 << 20)

        def count(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False).ids)

        return count

    def batches(self, texts: list[str], max_length: int, batch_size: int) -> list[TokenBatch]:
        """The texts tokenized, sorted by length and cut into batches of at most ``batch_size`` rows whose
        lengths differ little (a new batch starts where a text is over 1.25x the batch's shortest), so
        padding costs little. Rows keep their input positions."""
        encodings = self.tokenizer(max_length).encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        out: list[TokenBatch] = []
        start = 0
        while start < len(order):
            stop = start + 1
            first = lengths[order[start]]
            while (
                stop < len(order)
                and stop - start < batch_size
                and lengths[order[stop]] <= first * _BUCKET_GROWTH
            ):
                stop += 1
            rows = order[start:stop]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = int(lengths[i])
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            out.append(TokenBatch(rows, ids, mask))
            start = stop
        return out

    def pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Sentence vectors from token vectors (n, length, dim), as the folder's Pooling/Normalize say."""
        m = mask[..., None].astype(np.float32)
        if self.pooling == "cls":
            out = hidden[:, 0, :]
        elif self.pooling == "max":
            out = np.where(m > 0, hidden, -1e9).max(axis=1)
        else:
            out = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        out = np.asarray(out, dtype=np.float32)
        if self.normalize:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_folder(path: Path) -> ModelFolder:
    """Read ``path``'s sentence-transformers description. A folder without modules.json counts as a bare
    transformer with mean pooling (what sentence-transformers does for it)."""
    modules_json = _json(path / "modules.json")
    modules: list[str] = []
    pooling: str | None = "mean"
    normalize = False
    dim: int | None = None
    if isinstance(modules_json, list):
        pooling = None
        for entry in modules_json:
            kind = str(entry.get("type", "")).rsplit(".", 1)[-1] if isinstance(entry, dict) else ""
            modules.append(kind)
            if kind == "Pooling":
                config = _json(path / str(entry.get("path", "")) / "config.json") or {}
                dim = config.get("word_embedding_dimension")
                modes = [m for m in _POOLING_MODES if config.get(f"pooling_mode_{m}_tokens")]
                if config.get("pooling_mode") in _POOLING_MODES:
                    modes = [config["pooling_mode"]]
                pooling = modes[0] if len(modes) == 1 else None
            elif kind == "Normalize":
                normalize = True
    else:
        modules = ["Transformer", "Pooling"]
    st_config = _json(path / "sentence_bert_config.json") or {}
    hf_config = _json(path / "config.json") or {}
    positions = hf_config.get("max_position_embeddings")
    window = st_config.get("max_seq_length") or positions or 512
    if dim is None:
        dim = hf_config.get("hidden_size")
    tokenizer_file = path / "tokenizer.json"
    return ModelFolder(
        path=path,
        modules=modules,
        max_seq_length=int(window),
        positions=int(positions or window),
        pooling=pooling,
        normalize=normalize,
        dim=int(dim) if dim else None,
        tokenizer_file=tokenizer_file if tokenizer_file.is_file() else None,
    )
