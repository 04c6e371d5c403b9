"""Export a checkpoint to ONNX with its preprocessing facts, verified against PyTorch (what ``effnb export`` runs).

The exported graph takes a float32 ``images`` batch ``[batch, 3, k_test, k_test]`` already preprocessed
(see the ``effnb.preprocessing`` metadata entry) and returns ``logits`` and ``probabilities``. It is written by
the ``torch.onnx`` exporter (``dynamo=True``, which needs ``onnxscript``), checked with ``onnx.checker``, and run
with ONNX Runtime on a batch of real images: the predictions must equal PyTorch's and the probabilities agree
to ``atol``. Only then does it replace the output file. ``onnx``, ``onnxruntime`` and ``onnxscript`` come
with the optional extra ``export``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from effnb import __version__
from effnb.cli.evaluate import eval_sizes
from effnb.cli.paths import check_output_file, refuse_overlap
from effnb.cli.predict import files_cache, find_image_files
from effnb.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from effnb.train import onnx_runtime
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import EVAL_BATCH, Feed
from effnb.train.inference import predict

EXTRA_MODULES = ("onnx", "onnxruntime", "onnxscript")


class ExportError(ValueError):
    """The export extra is missing, no image could be read, or the exported model disagrees with PyTorch."""


def require_export_extra() -> dict[str, ModuleType]:
    """Import ``onnx``, ``onnxruntime`` and ``onnxscript``, or raise a one-line :class:`ExportError`."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs the optional extra 'export' (missing: {', '.join(missing)}): "
                          f"pip install -e '.[export]'")
    return {name: importlib.import_module(name) for name in EXTRA_MODULES}


class WithProbabilities(nn.Module):
    """The network with a softmax output beside its logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(images)
        return logits, logits.softmax(1)


def preprocessing_metadata(meta: dict, k_test: int, k_image_test: int) -> dict[str, str]:
    """What a user of the ONNX file needs to feed it, as ``metadata_props`` strings (JSON values)."""
    side = meta["preprocessing"]["cache_side"]
    facts = {
        "classes": list(meta["classes"]), "k_test": k_test, "k_image_test": k_image_test,
        "k_train": meta["preprocessing"]["k_train"], "cache_side": side,
        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
        "input": f"images: float32 [batch, 3, {k_test}, {k_test}], RGB, channels first",
        "preprocessing": (f"decode as RGB; resize (antialiased) so the longer side is {side}; take the central "
                          f"square of side round(shorter side * {k_test} / {k_image_test}); resize it (antialiased "
                          f"bilinear) to {k_test} x {k_test}; scale to 0..1; subtract mean and divide by std per channel"),
        "outputs": "logits [batch, classes]; probabilities = softmax(logits)",
        "effnb_version": __version__,
    }
    return {f"effnb.{key}": json.dumps(value) for key, value in facts.items()}


def export_onnx(model: nn.Module, path: str | os.PathLike, k_test: int, metadata: dict[str, str]) -> Path:
    """Export ``model`` (batch dimension dynamic) with ``metadata``, check it with ``onnx.checker`` and save it."""
    onnx = require_export_extra()["onnx"]
    example = torch.zeros(2, 3, k_test, k_test)
    with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps on stdout
        program = torch.onnx.export(WithProbabilities(model).eval(), (example,), dynamo=True, verbose=False,
                                    input_names=["images"], output_names=["logits", "probabilities"],
                                    dynamic_shapes={"images": {0: torch.export.Dim("batch")}})
    proto = program.model_proto
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    onnx.save(proto, path)
    return path


def ort_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session using ``threads`` threads (default: as many as torch)."""
    require_export_extra()
    return onnx_runtime.ort_session(str(path), threads)


def compare_with_pytorch(session, model: nn.Module, images: torch.Tensor, atol: float = 1e-4) -> dict:
    """Run both on ``images``: whether the predicted classes are equal and the largest probability difference."""
    with torch.inference_mode():
        expected = model(images.contiguous()).softmax(1).numpy()
    _, probs = session.run(None, {"images": images.contiguous().numpy()})
    diff = float(np.abs(probs - expected).max())
    same = bool((probs.argmax(1) == expected.argmax(1)).all())
    return {"images": len(images), "predictions_equal": same, "max_prob_diff": diff, "atol": atol,
            "ok": same and diff <= atol}


def time_inference(session, model: nn.Module, feed: Feed, repeats: int = 10) -> dict[str, float]:
    """Images/s over ``feed`` (in its batches) of PyTorch with BN folded, in fp32, and of ONNX Runtime, both including
    the same preprocessing, and of the preprocessing alone; runs interleaved, median of ``repeats``."""
    runs = {
        "preprocessing alone": lambda: [x for x, _ in feed.batches()],
        "PyTorch (BN folded, channels-last)": lambda: predict(model, feed, progress=False, onnx=False, bf16=False),
        "ONNX Runtime": lambda: [session.run(None, {"images": x.contiguous().numpy()}) for x, _ in feed.batches()],
    }
    for run in runs.values():  # warm-up
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: len(feed) / statistics.median(times) for name, times in seconds.items()}


def sample_files(files: list[Path], n: int) -> list[Path]:
    """``n`` files spread evenly over ``files`` (all when there are fewer)."""
    if len(files) <= n:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, images: list[str | os.PathLike],
                      k_test: int | None = None, n_images: int = 64, repeats: int = 10, atol: float = 1e-4) -> dict:
    """Export ``checkpoint`` to ``out``, verify it on up to ``n_images`` real images under ``images`` and time both.

    ``out`` is written only when the ONNX model's predictions equal PyTorch's and its probabilities agree to
    ``atol``; otherwise :class:`ExportError` says by how much they differ. An ``out`` that can't be written or
    would replace an input is refused first, before the export.
    """
    refuse_overlap(out, [checkpoint], "--onnx")
    refuse_overlap(out, images, "--onnx", inside=False)  # an .onnx beside the images is fine, over one is not
    out = check_output_file(out, "--onnx")
    modules = require_export_extra()
    files, _ = find_image_files(images)
    if out.exists():  # only an existing file can be one of the images found
        refuse_overlap(out, files, "--onnx", inside=False)
    model, meta = load_checkpoint(checkpoint)
    k_test, k_image_test = eval_sizes(meta["preprocessing"], k_test)
    cache, _ = files_cache(sample_files(files, n_images), meta["preprocessing"]["cache_side"], meta["classes"])
    if not len(cache):
        raise ExportError(f"no readable image under {', '.join(map(str, images))} to verify the export on")
    feed = Feed(cache, np.arange(len(cache)), k_test, "eval", k_image_test, batch_size=len(cache))
    batch = torch.cat([x for x, _ in feed.batches()])
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        export_onnx(model, tmp, k_test, preprocessing_metadata(meta, k_test, k_image_test))
        session = ort_session(tmp)
        check = compare_with_pytorch(session, model, batch, atol)
        if not check["ok"]:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch on {check['images']} images: predictions "
                              f"{'equal' if check['predictions_equal'] else 'differ'}, largest probability "
                              f"difference {check['max_prob_diff']:.2e} (tolerance {atol:g}); {out} not written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    speed = time_inference(ort_session(out), model, replace(feed, batch_size=EVAL_BATCH), repeats)
    return {"checkpoint": str(checkpoint), "onnx": str(out), "bytes": out.stat().st_size, "k_test": k_test,
            "k_image_test": k_image_test, "classes": list(meta["classes"]), "verification": check,
            "speed_img_per_s": speed, "threads": torch.get_num_threads(), "repeats": repeats,
            "versions": {"torch": torch.__version__, **{n: m.__version__ for n, m in modules.items()}}}
