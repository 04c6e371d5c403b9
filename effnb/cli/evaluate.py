"""Evaluate a saved checkpoint on a class-per-folder directory (what ``effnb evaluate`` runs)."""
from __future__ import annotations

import contextlib
import hashlib
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from effnb.data.cache import CACHE_ENV, build_cache, cache_home
from effnb.data.errors import DataError
from effnb.data.transforms import TestSize
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import Feed, check_resolution
from effnb.train.inference import evaluate
from effnb.utils.atomic import StorageError, ensure_dir
from effnb.utils.device import pick_device


def eval_sizes(preprocessing: dict, k_test: int | None = None) -> TestSize:
    """A checkpoint's recommended evaluation sizes, or ``k_test`` with its image size.

    ``k_test`` is checked against the checkpoint's cache side (see :func:`effnb.train.feed.check_resolution`).
    """
    if k_test is None:
        return TestSize(preprocessing["k_test"], preprocessing["k_image_test"])
    check_resolution(k_test, preprocessing["cache_side"])
    return TestSize.at(k_test)


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | Path, k_test: int | None = None,
                        cache_root: str | Path | None = None, device: str | None = None, progress: bool = True,
                        tta: bool = False) -> dict:
    """Accuracy and loss of ``checkpoint`` on every image of ``data_dir`` with the checkpoint's own test preprocessing.

    Class folders are matched case-insensitively to the checkpoint's classes. ``k_test`` overrides the
    checkpoint's test resolution (then ``k_image_test`` follows from it, :meth:`TestSize.at`); ``tta`` averages each
    image's logits with its horizontal mirror's (the study's flip TTA row). The decoded images are
    cached under ``cache_root`` (default ``cache_home()/eval``, see :func:`effnb.data.cache.cache_home`). The device,
    the checkpoint and ``k_test`` are checked before any image is decoded.
    """
    torch_device = pick_device(device)
    model, meta = load_checkpoint(checkpoint)
    pre = meta["preprocessing"]
    k_test, k_image_test = eval_sizes(pre, k_test)
    data_dir = Path(data_dir)
    key = hashlib.sha256(f"{data_dir.resolve()}:{pre['cache_side']}".encode()).hexdigest()[:12]
    cache_root = Path(cache_root) if cache_root else cache_home() / "eval"
    try:
        ensure_dir(cache_root, "evaluation cache folder")
    except StorageError as exc:
        raise StorageError(f"{exc} (set ${CACHE_ENV} to another folder)") from None
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result (one JSON object with --json)
        cache = build_cache(data_dir, cache_root / key, side=pre["cache_side"])
    wanted = {c.lower(): i for i, c in enumerate(meta["classes"])}
    found = [c.lower() for c in cache.classes]
    if sorted(found) != sorted(wanted):
        raise DataError(f"class folders {cache.classes} of {data_dir} do not match the checkpoint's classes {meta['classes']}")
    relabel = np.array([wanted[c] for c in found])
    cache.labels = relabel[np.asarray(cache.labels)]
    feed = Feed(cache, np.arange(len(cache)), k_test, "eval", k_image_test, batch_size=100)
    with torch.inference_mode():
        metrics = evaluate(model, feed, torch_device, progress, tta=tta)
    if not math.isfinite(metrics["loss"]):
        warnings.warn(f"the loss of {checkpoint} is {metrics['loss']} (JSON output writes it as null)", stacklevel=2)
    return {"checkpoint": str(checkpoint), "data_dir": str(data_dir), "accuracy": metrics["accuracy"],
            "loss": metrics["loss"], "images": metrics["n"], "skipped": len(cache.skipped),
            "k_test": k_test, "k_image_test": k_image_test, "tta": tta}
