"""Inference: :func:`predict`, :func:`evaluate`, test-resolution sweeps and BN recalibration.

Evaluation runs the model through the faster of ONNX Runtime (where installed) and a copy with BatchNorm folded
into the convolutions, in inference mode, channels-last, in small batches, optionally with horizontal-flip TTA.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse as fuse_conv_bn

from effnb.data.cache import ImageCache
from effnb.train.feed import EVAL_BATCH, Feed
from effnb.train.modes import autocast
from effnb.train.onnx_runtime import ort_available, ort_forward
from effnb.utils.correct import pack_correct
from effnb.utils.progress import tqdm


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 arithmetic is native on ``device`` (CUDA with bf16, or a CPU with AVX-512 BF16 / AMX).

    Elsewhere autocast emulates bf16 and runs several times *slower* than fp32, so the fast evaluation path
    uses it only where this is true.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def inference_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each BatchNorm folded into the convolution before it (torch.fx).

    Falls back to the model itself when it cannot be traced. The original model is left untouched.
    """
    model.eval()
    try:
        return fuse_conv_bn(model).to(memory_format=torch.channels_last)
    except Exception:  # noqa: BLE001 - an untraceable model still evaluates, only without folding
        return model


AUTO_MIN_BATCHES = 8  # the automatic choice times both fp32 paths only for at least this many evaluation batches
_FASTER: dict[tuple, bool] = {}  # (network shape, size, batch) -> whether ONNX Runtime beat BN-folded PyTorch


def _fp32_key(model: nn.Module, size: int, batch: int) -> tuple:
    return tuple(p.shape for p in model.parameters()), size, batch


def faster_fp32_path(model: nn.Module, ort: Callable[[torch.Tensor], torch.Tensor], size: int, batch: int,
                     rounds: int = 3) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``ort`` (ONNX Runtime) or None (BN-folded PyTorch), whichever runs a batch of ``batch`` random images at
    ``size`` faster on this CPU (median of ``rounds``, taking turns after a warm-up), timed once per network shape,
    size and batch. Which one wins depends on the CPU and the network (``effnb bench`` prints both)."""
    key = _fp32_key(model, size, batch)
    if key not in _FASTER:
        x = torch.rand(max(1, batch), 3, size, size).contiguous(memory_format=torch.channels_last)
        paths = {"ort": ort, "torch": inference_model(model)}
        times: dict[str, list[float]] = {name: [] for name in paths}
        with torch.inference_mode():
            for forward in paths.values():
                forward(x)
            for _ in range(rounds):
                for name, forward in paths.items():
                    start = time.perf_counter()
                    forward(x)
                    times[name].append(time.perf_counter() - start)
        _FASTER[key] = float(np.median(times["ort"])) < float(np.median(times["torch"]))
    return ort if _FASTER[key] else None


def eval_path(model: nn.Module, feed: Feed, device: torch.device, *, fast: bool, bf16: bool | None,
              onnx: bool | None) -> tuple[Callable[[torch.Tensor], torch.Tensor], bool]:
    """The forward function :func:`predict` runs and whether under bf16 autocast (options as there).

    One of: ``model`` itself (``fast=False``); ONNX Runtime (CPU, bf16 not forced, ``onnx`` or installed, and for
    ``onnx=None`` faster here by :func:`faster_fp32_path`); else the BN-folded copy, in bf16 where forced or fast.
    """
    if not fast:
        return model, False
    use_onnx = device.type == "cpu" and bf16 is not True and (ort_available() if onnx is None else onnx)
    if not use_onnx:
        use_bf16 = bf16_is_fast(device) if bf16 is None else bf16
        return inference_model(model), use_bf16
    net = None
    timed = len(feed) >= AUTO_MIN_BATCHES * feed.batch_size  # few images: not worth timing
    if onnx or timed and _FASTER.get(_fp32_key(model, feed.side, feed.batch_size)) is not False:
        net = ort_forward(model, feed.side)  # not exported where PyTorch already won the timing
        if net and onnx is None:  # both exact fp32: take whichever is faster for this network here
            net = faster_fp32_path(model, net, feed.side, feed.batch_size)
    return net or inference_model(model), False


def predict(model: nn.Module, feed: Feed, device: torch.device | str = "cpu", progress: bool = True,
            tta: bool = False, fast: bool = True, bf16: bool | None = None,
            onnx: bool | None = None, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits and labels of every image of ``feed`` (model in eval mode).

    ``tta`` averages the logits of each image and its horizontal mirror. ``fast`` (the default) evaluates in
    batches of ``batch_size`` (default :data:`EVAL_BATCH`) in fp32 by ONNX Runtime or a BN-folded copy in PyTorch
    (``onnx``: True or False forces one; None: where ONNX Runtime is installed, see :mod:`effnb.train.onnx_runtime`, the
    faster of the two here by :func:`faster_fp32_path`, or PyTorch for fewer than :data:`AUTO_MIN_BATCHES`
    batches). bf16 autocast (BN-folded PyTorch) runs only with ``bf16=True``, or with None where ONNX Runtime is
    not in play (not installed, or ``onnx=False``) and :func:`bf16_is_fast`. The study's numbers so do not depend
    on whether its CPU has native bf16.
    ``fast=False`` is the plain fp32 path in the feed's own batches, for comparisons. Off the CPU the feed's
    batches are made on the device (:meth:`Feed.on`) and nothing is read back before the last batch.
    """
    device = torch.device(device)
    model.to(device).to(memory_format=torch.channels_last).eval()
    if fast:
        feed = replace(feed, batch_size=batch_size or EVAL_BATCH)
    feed = feed.on(device)  # off the CPU: batches made on the device, logits kept there until the end
    net, use_bf16 = eval_path(model, feed, device, fast=fast, bf16=bf16, onnx=onnx)
    logits, labels = [], []
    with (torch.inference_mode(), autocast(device, use_bf16),
          tqdm(total=len(feed), desc=f"eval @{feed.side}px", unit="img", disable=not progress, leave=False) as bar):
        for x, y in feed.batches():
            x = x.to(device)
            out = net(x).float()
            if tta:
                out = (out + net(x.flip(-1)).float()) / 2
            logits.append(out)
            labels.append(y)
            bar.update(len(y))
    return torch.cat(logits).cpu(), torch.cat(labels).cpu()


def score(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Cross-entropy loss, accuracy and number of images of ``logits`` against the true ``labels``."""
    return {"loss": F.cross_entropy(logits, labels).item(), "accuracy": (logits.argmax(1) == labels).float().mean().item(),
            "n": len(labels)}


def evaluate(model: nn.Module, feed: Feed, device: torch.device | str = "cpu", progress: bool = True,
             tta: bool = False, fast: bool = True, bf16: bool | None = None, per_image: bool = False,
             onnx: bool | None = None, batch_size: int | None = None) -> dict:
    """Cross-entropy loss and accuracy of ``model`` on ``feed``, with images/s (options as :func:`predict`).

    ``per_image`` adds ``correct``: which images it got right, as a string of 0/1 in the feed's order
    (see :mod:`effnb.utils.correct`), for paired comparisons of models on the same images.
    """
    start = time.perf_counter()
    logits, labels = predict(model, feed, device, progress, tta=tta, fast=fast, bf16=bf16, onnx=onnx,
                             batch_size=batch_size)
    seconds = time.perf_counter() - start
    metrics = {**score(logits, labels), **feed.test_size._asdict(), "img_per_s": len(labels) / seconds}
    if per_image:
        metrics["correct"] = pack_correct((logits.argmax(1) == labels).numpy())
    return metrics


def resolution_sweep(model: nn.Module, cache: ImageCache, indices: np.ndarray, k_tests: list[int],
                     batch_size: int = 100, device: torch.device | str = "cpu", per_image: bool = False,
                     recalibrate_on: np.ndarray | None = None) -> list[dict]:
    """Accuracy and loss against the test resolution k_test (the FixRes curve), with the evaluation preprocessing.

    With ``recalibrate_on`` (training image indices), a copy of the model has its BN statistics re-estimated on
    those images at each k_test before it is evaluated there (no gradient step).
    """
    rows = []
    for k in tqdm(k_tests, desc="resolution sweep", unit="res"):
        at_k = model
        if recalibrate_on is not None:
            at_k = recalibrate_bn(copy.deepcopy(model), Feed(cache, recalibrate_on, k, "eval", batch_size=batch_size),
                                  device, progress=False)
        rows.append(evaluate(at_k, Feed(cache, indices, k, "eval", batch_size=batch_size), device, progress=False,
                             per_image=per_image))
    return rows


@torch.no_grad()
def recalibrate_bn(model: nn.Module, feed: Feed, device: torch.device | str = "cpu", progress: bool = True) -> nn.Module:
    """Re-estimate every batch-norm's running statistics on ``feed`` (no gradient step, weights untouched)."""
    device = torch.device(device)
    model.to(device).to(memory_format=torch.channels_last)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
    model.train()
    with tqdm(total=len(feed), desc=f"BN recalibration @{feed.side}px", unit="img", disable=not progress,
              leave=False) as bar:
        for x, _ in feed.on(device).batches():
            model(x.to(device))
            bar.update(len(x))
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    return model.eval()
