"""Training on the decoded-image cache: :func:`fit` and its mechanics.

Randomness comes from a generator seeded by (seed, epoch), which makes training deterministic on the CPU and lets
an interrupted run resume exactly where it stopped. Each mechanic beyond a plain loop is switched by a
:class:`TrainConfig` field: a linear decay of the learning rate to zero (Li et al. 2020, "Budgeted training"), an
exponential moving average of the weights and BN buffers (``torch.optim.swa_utils.AveragedModel``; the average is
what is evaluated and saved), progressive resizing with rising augmentation (EfficientNetV2's progressive learning)
and bf16 autocast.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from effnb.data.transforms import P_RANGE
from effnb.train import distributed
from effnb.train.feed import Feed
from effnb.train.inference import bf16_is_fast, evaluate
from effnb.train.modes import autocast, set_train_mode, trainable_parameters
from effnb.train.time_limit import TimeLimit
from effnb.utils.progress import tqdm


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """How one run trains: optimiser, schedule, loss, augmentation strength, resizing, EMA, precision.

    Named, citable combinations of these live in :mod:`effnb.train.recipes`. ``epochs`` counts real epochs;
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
    bf16: bool | None = False  # bf16 autocast for the forward pass and the loss; None: on CUDA where it is native

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
    epochs: int | None = None  # the real epochs after a time limit re-planned the run; None: the config's


def make_optimizer(params: list[nn.Parameter], config: TrainConfig, steps_per_epoch: int):
    """Optimizer and scheduler for ``config`` (the scheduler steps per batch, except plateau: per epoch)."""
    if config.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr)
    else:
        opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True)
    return opt, make_scheduler(opt, config, steps_per_epoch)


def make_scheduler(opt: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, done_steps: int = 0):
    """The learning-rate schedule of ``config`` over its epochs, already ``done_steps`` steps in (a run whose
    schedule is re-planned midway goes on from where its new schedule stands at that step)."""
    total = max(10, config.epochs * steps_per_epoch)  # OneCycleLR needs a few steps per phase
    for group in opt.param_groups:  # a schedule rebuilt midway starts again from its first learning rate
        group["lr"] = group.get("initial_lr", group["lr"])
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
    if done_steps and config.schedule != "plateau":  # plateau steps per epoch on a metric: nothing to replay
        with warnings.catch_warnings():  # stepping the schedule alone, without optimizer steps, is the point here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(min(done_steps, total)):
                sched.step()
    return sched


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and BN buffers (updated after each step)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random stream of one epoch: the same for a resumed run as for an uninterrupted one."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def should_stop(state: TrainState, row: dict, patience: int | None) -> bool:
    """Early stopping: count epochs without a better validation loss in ``state``; True after ``patience`` of them."""
    if patience is None or "val_loss" not in row:
        return False
    if row["val_loss"] < state.best_val_loss:
        state.best_val_loss, state.bad_epochs = row["val_loss"], 0
        return False
    state.bad_epochs += 1
    return state.bad_epochs >= patience


SYNC_EVERY = 50  # off the CPU, steps between host reads of the running loss (the divergence check included)


def default_sync_every(device: torch.device) -> int:
    """Steps between host syncs: every step on the CPU, where a sync costs nothing measurable (``effnb bench
    --step``: 0.99x without), else :data:`SYNC_EVERY`, so an accelerator never waits for the host."""
    return 1 if device.type == "cpu" else SYNC_EVERY


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    """Whether training autocasts to bf16: as ``config.bf16`` says; None means on CUDA where bf16 is native."""
    return config.bf16 if config.bf16 is not None else device.type == "cuda" and bf16_is_fast(device)


def train_one_epoch(model: nn.Module, feed: Feed, opt: torch.optim.Optimizer, sched, ema: AveragedModel | None,
                    config: TrainConfig, device: torch.device, *, drop_last: bool, generator: torch.Generator,
                    progress: bool, desc: str, total: int, where: str,
                    sync_every: int = 1) -> tuple[float, int, int, float]:
    """One pass over ``feed`` (shuffled by ``generator``): the summed loss, correct count, images and seconds.

    ``sched`` steps after every batch when given (None: the caller steps it once per epoch). A NaN or infinite
    loss raises :class:`TrainingDiverged` with ``where`` in its message: before the step is taken with
    ``sync_every=1``; else the loss and accuracy are summed on the device and read (and checked) every
    ``sync_every`` steps and at the end, so at most that many steps are wasted and nothing of the epoch is saved.
    """
    loss_sum = correct = seen = pending = 0
    pending_loss = pending_correct = torch.zeros((), device=device)  # off the CPU: sums since the last read
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)
    world = distributed.world_size()
    bf16 = use_bf16(config, device)

    def finite(value: torch.Tensor) -> bool:
        return bool(torch.isfinite(value)) if world == 1 else distributed.all_finite(value)

    def diverged(value: float) -> TrainingDiverged:
        bar.close()
        return TrainingDiverged(f"loss became {value} {where}")

    def read_pending() -> None:  # one host sync for many steps
        nonlocal loss_sum, correct, pending, pending_loss, pending_correct
        if not finite(pending_loss):
            raise diverged(pending_loss.item())
        loss_sum, correct = loss_sum + pending_loss.item(), correct + int(pending_correct.item())
        pending_loss, pending_correct, pending = torch.zeros_like(pending_loss), torch.zeros_like(pending_correct), 0

    for x, y in feed.batches(generator, shuffle=True, drop_last=drop_last, part=distributed.part()):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, bf16):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        if sync_every == 1 and not finite(loss):
            raise diverged(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update_parameters(model if world == 1 else distributed.unwrap(model))
        if sched is not None:
            sched.step()
        n = len(y)
        seen += n
        if sync_every == 1:
            loss_sum += loss.item() * n
            correct += (logits.argmax(1) == y).sum().item()
        else:
            pending_loss = pending_loss + loss.detach().float() * n
            pending_correct = pending_correct + (logits.argmax(1) == y).sum()
            pending += 1
            if pending == sync_every:
                read_pending()
        bar.update(n * world)
        if pending == 0:
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
    if pending:
        read_pending()
    bar.close()
    if world > 1:  # the global sums, as one process counts them
        loss_sum, correct, seen = distributed.all_reduce_sum(loss_sum, correct, seen)
        correct, seen = int(correct), int(seen)
    return loss_sum, correct, seen, time.perf_counter() - start


def _resume(model: nn.Module, config: TrainConfig, state: TrainState, steps: int):
    """Optimizer, scheduler and weight average for ``model``, restored from ``state`` when it has them."""
    params = trainable_parameters(model, config.trainable)
    opt, sched = make_optimizer(params, config, steps)
    if state.epoch and state.optimizer_state is not None:
        opt.load_state_dict(state.optimizer_state)
        sched.load_state_dict(state.scheduler_state)
    ema = make_ema(model, config.ema_decay) if config.ema_decay is not None else None
    if ema is not None and state.ema_state is not None:
        ema.load_state_dict(state.ema_state)
    return opt, sched, ema


def _validate(model: nn.Module, val: Feed, device: torch.device) -> dict:
    """Validation loss and accuracy; with several ranks rank 0 evaluates and tells the others."""
    metrics = evaluate(model, val, device=device, progress=False) if distributed.is_main() else None
    metrics = distributed.broadcast_object(metrics)
    return {"val_loss": metrics["loss"], "val_acc": metrics["accuracy"]}


def fit(model: nn.Module, train: Feed, config: TrainConfig, *, val: Feed | None = None, seed: int = 0,
        device: torch.device | str = "cpu", state: TrainState | None = None,
        on_epoch_end: Callable[[nn.Module, TrainState, object, object], None] | None = None,
        progress: bool = True, sync_every: int | None = None, time_limit: TimeLimit | None = None) -> TrainState:
    """Train ``model`` on ``train`` for ``config.epochs`` epochs, starting after ``state.epoch`` when resuming.

    Returns the training state with a per-epoch history (train/val loss and accuracy, learning rate,
    input size, images/s, wall time). ``on_epoch_end(model, state, optimizer, scheduler)`` is where
    checkpoints are written (``state.ema_state`` holds the weight average). In train mode each epoch's
    input size and crop range follow ``config.epoch_plan`` (``train.side`` is the target k_train). With
    ``config.ema_decay`` the validation rows evaluate the average, and ``model`` holds the average when
    ``fit`` returns. Raises :class:`TrainingDiverged` on a NaN/inf loss, before anything of that epoch is saved.
    Under torchrun each rank trains on its share of each batch; rank 0 alone evaluates, prints and saves.
    Off the CPU the cache is held on the device where it fits (:meth:`Feed.on`) and the host reads the loss every
    ``sync_every`` steps (default :func:`default_sync_every`).
    With ``time_limit``, each epoch re-plans the run's length to the most epochs projected to fit it, shorter or
    longer (:meth:`TimeLimit.epochs_that_fit`, at most its ``longer`` times ``config.epochs``): ``state.epochs``
    records the new length, and a resumed run keeps it.
    """
    device = torch.device(device)
    train, val = train.on(device), val.on(device) if val is not None else None
    sync_every = sync_every or default_sync_every(device)
    model.to(device).to(memory_format=torch.channels_last)
    state = state or TrainState()
    world = distributed.world_size()
    if world > 1:  # rank 0's weights and state on every rank; None: rank 0 has nothing to train
        state = distributed.join(model, state, train.batch_size, len(train))
        if state is None:
            return TrainState()
        progress = progress and distributed.is_main()
    planned = config.epochs
    if state.epochs is not None:  # re-planned by a time limit before the interruption
        config = replace(config, epochs=state.epochs)
    steps = max(1, len(train) // train.batch_size)
    opt, sched, ema = _resume(model, config, state, steps)
    per_batch_schedule = config.schedule != "plateau"
    net = distributed.wrap_model(model, device)  # model itself for one process
    while state.epoch < config.epochs:
        epoch = state.epoch
        set_train_mode(model, config.trainable)
        gen = epoch_generator(seed, epoch)
        feed = train
        if train.mode == "train":
            side, p_range = config.epoch_plan(epoch, train.side)
            feed = replace(train, side=side, p_range=p_range)
        loss_sum, correct, seen, elapsed = train_one_epoch(
            net, feed, opt, sched if per_batch_schedule else None, ema, config, device,
            drop_last=len(train) >= train.batch_size, generator=gen, progress=progress,
            desc=f"epoch {epoch + 1}/{config.epochs} @{feed.side}px", total=steps * train.batch_size,
            where=f"in epoch {epoch + 1}; the last good checkpoint (epoch {state.epoch}) is kept",
            sync_every=sync_every)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               "lr": opt.param_groups[0]["lr"], "size": feed.side, "img_per_s": seen / elapsed, "seconds": elapsed}
        if ema is not None:
            state.ema_state = ema.state_dict()
        if val is not None:
            started = time.perf_counter()
            row.update(_validate(ema.module if ema is not None else model, val, device))
            row["val_seconds"] = time.perf_counter() - started
        if not per_batch_schedule:
            sched.step(row.get("val_loss", row["train_loss"]))
        state.history.append(row)
        state.epoch = epoch + 1
        if time_limit is not None and state.epoch < config.epochs:
            epochs = distributed.broadcast_object(time_limit.epochs_that_fit(config, train.side, state.history, planned))
            if epochs != config.epochs:
                how = "behind" if epochs < config.epochs else "ahead of"
                row["replanned_to"] = state.epochs = epochs
                config = replace(config, epochs=epochs)
                if per_batch_schedule:
                    sched = make_scheduler(opt, config, steps, done_steps=state.epoch * steps)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if "replanned_to" in row:
                tqdm.write(f"{how} the time limit of {time_limit.seconds / 60:.1f} min: the run now ends after "
                           f"epoch {row['replanned_to']}, its schedule re-planned to fit")
        stop = should_stop(state, row, config.early_stopping)
        if on_epoch_end is not None and distributed.is_main():
            on_epoch_end(model, state, opt, sched)
        if stop:
            break
    distributed.unwrap(net)  # the network itself again, with plain BN layers
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    return state
