"""Training and evaluation on the decoded-image cache: fit, evaluate, predict, test-resolution sweeps.

Batches are gathered from the uint8 cache and cropped/resized in one batched call, so an epoch never
decodes a JPEG. Randomness comes from a generator seeded by (seed, epoch), which makes training
deterministic on the CPU and lets an interrupted run resume exactly where it stopped.

Training mechanics beyond a plain loop, each switched by a :class:`TrainConfig` field: a linear decay
of the learning rate to zero (Li et al. 2020, "Budgeted training"), an exponential moving average of
the weights and BN buffers (``torch.optim.swa_utils.AveragedModel``; the average is what is evaluated
and saved), progressive resizing with rising augmentation (EfficientNetV2's progressive learning:
small images and large crops early, the target resolution and crop range in the last epoch) and bf16
autocast. Evaluation (:func:`predict`) runs the model through ONNX Runtime where it is installed, else a copy
with BatchNorm folded into the convolutions, in inference mode, channels-last, in large batches, optionally
with horizontal-flip TTA.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse as fuse_conv_bn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .data import ImageCache
from .onnx_runtime import ort_available, ort_forward
from .stats import pack_correct
from .progress import tqdm
from .transforms import P_RANGE, eval_batch, image_test_size, train_batch

# evaluation batch of the fast path, measured by ``effnb bench`` (its "batch 256" and "batch 64" rows): a small
# batch keeps its activations in the CPU's caches; 64 ran 1.3-1.6x faster than 256, and for the phi = 1 model at
# 108 px 32 ran faster than 64 again in BN-folded PyTorch
EVAL_BATCH = 32


MAX_RESOLUTION_FACTOR = 2  # resolutions up to twice the cache's image side; beyond, memory grows for no detail
MIN_USEFUL_RESOLUTION = 16  # the networks downsample 8x: below this they see at most 2 x 2 positions


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_resolution(resolution: int, cache_side: int) -> None:
    """Refuse a resolution that is not a positive integer or above ``MAX_RESOLUTION_FACTOR`` x the cache's side;
    warn about a tiny one."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    limit = MAX_RESOLUTION_FACTOR * cache_side
    if resolution > limit:
        raise ValueError(f"resolution {resolution} px is above the limit of {limit} px "
                         f"({MAX_RESOLUTION_FACTOR} x the side {cache_side} of the decoded images)")
    if resolution < MIN_USEFUL_RESOLUTION:
        warnings.warn(f"resolution {resolution} px is tiny (below {MIN_USEFUL_RESOLUTION} px the network sees at most "
                      f"2 x 2 positions): expect accuracy near chance", stacklevel=1)


@dataclass(frozen=True)
class Feed:
    """Which images, at which input size, with which preprocessing: "train" augmentation or "eval" preprocessing.

    ``size`` is k_train in train mode and k_test in eval mode (``k_image_test`` defaults to ``image_test_size(size)``).
    """

    cache: ImageCache
    indices: np.ndarray
    size: int
    mode: Literal["train", "eval"] = "train"
    k_image_test: int | None = None
    batch_size: int = 64
    p_range: tuple[float, float] = P_RANGE  # train mode: range of the crop proportion (smaller = stronger)

    def __post_init__(self) -> None:
        check_resolution(self.size, self.cache.side)

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, generator: torch.Generator | None = None, shuffle: bool = False,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (normalised channels-last images, labels); train mode augments with ``generator``."""
        order = self.indices
        if shuffle:
            order = order[torch.randperm(len(order), generator=generator).numpy()]
        stop = len(order) - (len(order) % self.batch_size if drop_last else 0)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) == 0:
                break
            images = torch.from_numpy(np.ascontiguousarray(self.cache.images[idx]))
            hw = torch.from_numpy(np.asarray(self.cache.hw[idx]))
            labels = torch.from_numpy(np.asarray(self.cache.labels[idx], dtype=np.int64))
            if self.mode == "train":
                x, _ = train_batch(images, hw, self.size, generator=generator, p_range=self.p_range)
            else:
                x = eval_batch(images, hw, self.size, self.k_image_test)
            yield x, labels


@dataclass(frozen=True)
class TrainConfig:
    """How one run trains: optimiser, schedule, loss, augmentation strength, resizing, EMA, precision.

    Named, citable combinations of these live in :mod:`effnb.recipes`. ``epochs`` counts real epochs;
    with progressive resizing they are cheaper than epochs at the target size (:meth:`equivalent_epochs`).
    """

    epochs: int
    lr: float = 1e-3
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    weight_decay: float = 0.05
    schedule: Literal["onecycle", "linear", "cosine", "constant", "plateau"] = "onecycle"
    label_smoothing: float = 0.1
    early_stopping: int | None = None  # patience in epochs on the validation loss
    trainable: Literal["all", "head"] = "all"  # "head": classifier + final BN only, rest frozen in eval mode (FixRes)
    p_range: tuple[float, float] = P_RANGE  # crop proportion range of the last epoch (the seed's U(0.2, 0.7))
    p_range_start: tuple[float, float] | None = None  # first epoch's range, moving linearly to p_range
    size_start: float = 1.0  # first epoch's input size as a fraction of k_train, rising linearly to 1
    ema_decay: float | None = None  # per-step decay of the weight average; None: no EMA
    bf16: bool = False  # bf16 autocast for the forward pass and the loss

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.lr <= 0 or not 0 < self.size_start <= 1:
            raise ValueError(f"epochs must be >= 0, lr > 0 and 0 < size_start <= 1: {self}")
        for p in (self.p_range, self.p_range_start or self.p_range):
            if not 0 < p[0] <= p[1] <= 1:
                raise ValueError(f"a crop proportion range must satisfy 0 < low <= high <= 1, got {p}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")

    def as_dict(self) -> dict:
        return asdict(self)

    def epoch_plan(self, epoch: int, k_train: int) -> tuple[int, tuple[float, float]]:
        """Input size and crop range of epoch ``epoch`` (0-based): linear from the start values to the targets."""
        t = epoch / (self.epochs - 1) if self.epochs > 1 else 1.0
        size = round(k_train * (self.size_start + (1 - self.size_start) * t))
        start = self.p_range_start or self.p_range
        p_range = tuple(round(a + (b - a) * t, 4) for a, b in zip(start, self.p_range))
        return size, p_range

    def equivalent_epochs(self, k_train: int) -> float:
        """Cost in epochs at the target size: the sum of (size / k_train)^2 over the epochs."""
        return sum((self.epoch_plan(e, k_train)[0] / k_train) ** 2 for e in range(self.epochs))


@dataclass
class TrainState:
    """What a per-epoch checkpoint holds, so training can resume."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf
    bad_epochs: int = 0
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    ema_state: dict | None = None  # the AveragedModel's state dict (weights, BN buffers, n_averaged)


def trainable_parameters(model: nn.Module, trainable: str) -> list[nn.Parameter]:
    """Select (and unfreeze only) the parameters a recipe trains."""
    if trainable == "all":
        params = list(model.parameters())
    elif trainable == "head":
        params = list(model.final_bn.parameters()) + list(model.classifier.parameters())
    else:
        raise ValueError(f"unknown trainable set {trainable!r}")
    wanted = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    return params


def set_train_mode(model: nn.Module, trainable: str) -> None:
    """Train mode for what is trained; with ``head`` every other BN keeps its running statistics frozen."""
    if trainable == "head":
        model.eval()
        model.final_bn.train()
    else:
        model.train()


def make_optimizer(params: list[nn.Parameter], config: TrainConfig, steps_per_epoch: int):
    """Optimizer and scheduler for ``config`` (the scheduler steps per batch, except plateau: per epoch)."""
    if config.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr)
    else:
        opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True)
    total = max(10, config.epochs * steps_per_epoch)  # OneCycleLR needs a few steps per phase
    if config.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.2)
    elif config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    elif config.schedule == "linear":  # Li et al. 2020: decay linearly to zero at the end of the budget
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / total))
    elif config.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=1)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when asked for, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and BN buffers (updated after each step)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random stream of one epoch: the same for a resumed run as for an uninterrupted one."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def fit(model: nn.Module, train: Feed, config: TrainConfig, *, val: Feed | None = None, seed: int = 0,
        device: torch.device | str = "cpu", state: TrainState | None = None,
        on_epoch_end: Callable[[nn.Module, TrainState, object, object], None] | None = None,
        progress: bool = True) -> TrainState:
    """Train ``model`` on ``train`` for ``config.epochs`` epochs, starting after ``state.epoch`` when resuming.

    Returns the training state with a per-epoch history (train/val loss and accuracy, learning rate,
    input size, images/s, wall time). ``on_epoch_end(model, state, optimizer, scheduler)`` is where
    checkpoints are written (``state.ema_state`` holds the weight average). In train mode each epoch's
    input size and crop range follow ``config.epoch_plan`` (``train.size`` is the target k_train). With
    ``config.ema_decay`` the validation rows evaluate the average, and ``model`` holds the average when
    ``fit`` returns. Raises :class:`TrainingDiverged` on a NaN/inf loss, before anything of that epoch is saved.
    """
    device = torch.device(device)
    model.to(device).to(memory_format=torch.channels_last)
    state = state or TrainState()
    params = trainable_parameters(model, config.trainable)
    steps = max(1, len(train) // train.batch_size)
    opt, sched = make_optimizer(params, config, steps)
    if state.epoch and state.optimizer_state is not None:
        opt.load_state_dict(state.optimizer_state)
        sched.load_state_dict(state.scheduler_state)
    ema = make_ema(model, config.ema_decay) if config.ema_decay is not None else None
    if ema is not None and state.ema_state is not None:
        ema.load_state_dict(state.ema_state)
    per_batch_schedule = config.schedule != "plateau"
    for epoch in range(state.epoch, config.epochs):
        set_train_mode(model, config.trainable)
        gen = epoch_generator(seed, epoch)
        feed = train
        if train.mode == "train":
            size, p_range = config.epoch_plan(epoch, train.size)
            feed = replace(train, size=size, p_range=p_range)
        loss_sum = correct = seen = 0
        start = time.perf_counter()
        bar = tqdm(total=steps * train.batch_size, desc=f"epoch {epoch + 1}/{config.epochs} @{feed.size}px",
                   unit="img", disable=not progress, leave=False)
        for x, y in feed.batches(gen, shuffle=True, drop_last=len(train) >= train.batch_size):
            x, y = x.to(device, non_blocking=True), y.to(device)
            with autocast(device, config.bf16):
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            if not torch.isfinite(loss):
                bar.close()
                raise TrainingDiverged(f"loss became {loss.item()} in epoch {epoch + 1}; "
                                       f"the last good checkpoint (epoch {state.epoch}) is kept")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            if per_batch_schedule:
                sched.step()
            n = len(y)
            loss_sum += loss.item() * n
            correct += (logits.argmax(1) == y).sum().item()
            seen += n
            bar.update(n)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
        bar.close()
        elapsed = time.perf_counter() - start
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               "lr": opt.param_groups[0]["lr"], "size": feed.size, "img_per_s": seen / elapsed, "seconds": elapsed}
        if ema is not None:
            state.ema_state = ema.state_dict()
        if val is not None:
            metrics = evaluate(ema.module if ema is not None else model, val, device=device, progress=False)
            row.update(val_loss=metrics["loss"], val_acc=metrics["accuracy"])
        if not per_batch_schedule:
            sched.step(row.get("val_loss", row["train_loss"]))
        state.history.append(row)
        state.epoch = epoch + 1
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        stop = False
        if config.early_stopping is not None and "val_loss" in row:
            if row["val_loss"] < state.best_val_loss:
                state.best_val_loss, state.bad_epochs = row["val_loss"], 0
            else:
                state.bad_epochs += 1
                stop = state.bad_epochs >= config.early_stopping
        if on_epoch_end is not None:
            on_epoch_end(model, state, opt, sched)
        if stop:
            break
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    return state


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 arithmetic is native on ``device`` (CUDA with bf16, or a CPU with AVX-512 BF16 / AMX).

    Elsewhere autocast emulates bf16 and runs several times *slower* than fp32 (measured: about 12x on
    an AVX2-only AMD EPYC), so the fast evaluation path uses it only where this is true.
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


def predict(model: nn.Module, feed: Feed, device: torch.device | str = "cpu", progress: bool = True,
            tta: bool = False, fast: bool = True, bf16: bool | None = None,
            onnx: bool | None = None, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits and labels of every image of ``feed`` (model in eval mode).

    ``tta`` averages the logits of each image and its horizontal mirror. ``fast`` (the default) evaluates in
    batches of ``batch_size`` (default :data:`EVAL_BATCH`) in fp32 by ONNX Runtime or a BN-folded copy in PyTorch
    (``onnx``: True or False forces one; None: where ONNX Runtime is installed, see :mod:`effnb.onnx_runtime`, the
    faster of the two here by :func:`faster_fp32_path`, or PyTorch for fewer than :data:`AUTO_MIN_BATCHES`
    batches). bf16 autocast (BN-folded PyTorch) runs only with ``bf16=True``, or with None where ONNX Runtime is
    not in play (not installed, or ``onnx=False``) and :func:`bf16_is_fast`. The study's numbers so do not depend
    on whether its CPU has native bf16.
    ``fast=False`` is the plain fp32 path in the feed's own batches, for comparisons.
    """
    device = torch.device(device)
    model.to(device).to(memory_format=torch.channels_last).eval()
    if fast:
        feed = replace(feed, batch_size=batch_size or EVAL_BATCH)
    use_onnx = fast and device.type == "cpu" and bf16 is not True and (ort_available() if onnx is None else onnx)
    net = None
    timed = len(feed) >= AUTO_MIN_BATCHES * feed.batch_size  # few images: not worth timing
    if use_onnx and (onnx or timed and _FASTER.get(_fp32_key(model, feed.size, feed.batch_size)) is not False):
        net = ort_forward(model, feed.size)  # not exported where PyTorch already won the timing
        if net and onnx is None:  # both exact fp32: take whichever is faster for this network here
            net = faster_fp32_path(model, net, feed.size, feed.batch_size)
    use_bf16 = fast and not use_onnx and (bf16_is_fast(device) if bf16 is None else bf16)
    net = net or (inference_model(model) if fast else model)
    logits, labels = [], []
    with (torch.inference_mode(), autocast(device, use_bf16),
          tqdm(total=len(feed), desc=f"eval @{feed.size}px", unit="img", disable=not progress, leave=False) as bar):
        for x, y in feed.batches():
            x = x.to(device)
            out = net(x).float()
            if tta:
                out = (out + net(x.flip(-1)).float()) / 2
            logits.append(out.cpu())
            labels.append(y)
            bar.update(len(y))
    return torch.cat(logits), torch.cat(labels)


def score(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Cross-entropy loss, accuracy and number of images of ``logits`` against the true ``labels``."""
    return {"loss": F.cross_entropy(logits, labels).item(), "accuracy": (logits.argmax(1) == labels).float().mean().item(),
            "n": len(labels)}


def evaluate(model: nn.Module, feed: Feed, device: torch.device | str = "cpu", progress: bool = True,
             tta: bool = False, fast: bool = True, bf16: bool | None = None, per_image: bool = False,
             onnx: bool | None = None, batch_size: int | None = None) -> dict:
    """Cross-entropy loss and accuracy of ``model`` on ``feed``, with images/s (options as :func:`predict`).

    ``per_image`` adds ``correct``: which images it got right, as a string of 0/1 in the feed's order
    (see :mod:`effnb.stats`), for paired comparisons of models on the same images.
    """
    start = time.perf_counter()
    logits, labels = predict(model, feed, device, progress, tta=tta, fast=fast, bf16=bf16, onnx=onnx,
                             batch_size=batch_size)
    seconds = time.perf_counter() - start
    metrics = {**score(logits, labels), "k_test": feed.size,
               "k_image_test": feed.k_image_test or image_test_size(feed.size), "img_per_s": len(labels) / seconds}
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
    with tqdm(total=len(feed), desc=f"BN recalibration @{feed.size}px", unit="img", disable=not progress,
              leave=False) as bar:
        for x, _ in feed.batches():
            model(x.to(device))
            bar.update(len(x))
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    return model.eval()
