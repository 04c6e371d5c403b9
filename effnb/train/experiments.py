"""Experiments that resume: a config's content hash names its folder; a finished one is read back, not re-run.

An experiment is its content: the hash covers the network (not its name), the recipe, the images and the
seed, never the label. The folder is ``experiments/<label>-<hash>``; an experiment with the same content under
another label finds that folder and reads its result back.

Each experiment folder holds ``progress.pt`` (written after every epoch: weights, optimizer, scheduler,
history), ``model.pt`` (a usable checkpoint, see :mod:`effnb.train.checkpoint`) and ``result.json``, written
last and atomically: its presence is what "finished" means. A run holds the folder's lock while it trains;
a damaged ``progress.pt``, ``result.json`` or ``model.pt`` (its SHA-256 is recorded in ``result.json``) is set
aside (``*.damaged``) with a warning and the experiment runs again.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from effnb.data.cache import ImageCache
from effnb.data.transforms import TestSize
from effnb.nn.flops import count_flops, count_params
from effnb.nn.model import EffNet, NetSpec
from effnb.train.checkpoint import load_checkpoint, save_checkpoint
from effnb.train.feed import Feed
from effnb.train.fit import TrainConfig, TrainState, fit
from effnb.train.inference import evaluate, recalibrate_bn
from effnb.train.time_limit import TimeLimit
from effnb.utils.atomic import LOCK_FILE, ensure_dir, locked, torch_save, write_json


@dataclass(frozen=True)
class Experiment:
    """One training run (or FixRes step) with everything that determines its result.

    ``kind``: ``train`` trains with the seed's augmentation at the spec's resolution (k_train); ``finetune``
    starts from ``init`` and trains with the *evaluation* preprocessing at ``k_test``; ``bn_recal`` starts from
    ``init`` and only re-estimates batch-norm statistics with the evaluation preprocessing at ``k_test``.
    Evaluation is at ``k_test``, which defaults to k_train (the spec's resolution). ``name`` is a label for
    tables and folders, not part of the experiment's identity (:meth:`key`).
    """

    name: str
    spec: NetSpec
    train: TrainConfig
    train_indices: tuple[int, ...]
    eval_indices: tuple[int, ...] = ()
    k_test: int | None = None
    kind: Literal["train", "finetune", "bn_recal"] = "train"
    init: str | None = None
    batch_size: int = 64
    seed: int = 0
    data_key: str = ""

    def __post_init__(self) -> None:
        if self.k_test is None:
            object.__setattr__(self, "k_test", self.spec.resolution)

    def key(self) -> str:
        """Content hash of everything that determines the result (12 hex digits): not the label nor the spec's name;
        the starting checkpoint counts by its bytes, not its path."""
        config = asdict(self)
        del config["name"]
        config["spec"] = self.spec.content()
        config["train_indices"] = hashlib.sha256(np.asarray(self.train_indices, dtype=np.int64).tobytes()).hexdigest()
        config["eval_indices"] = hashlib.sha256(np.asarray(self.eval_indices, dtype=np.int64).tobytes()).hexdigest()
        if self.init is not None and Path(self.init).is_file():  # the starting weights, wherever the file lies
            config["init"] = hashlib.sha256(Path(self.init).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def folder(self, artifacts_dir: str | Path) -> Path:
        """``experiments/<name>-<key>``, or the folder of an experiment with the same key under another name."""
        root = Path(artifacts_dir) / "experiments"
        same = sorted(root.glob(f"*-{self.key()}"))
        return same[0] if same else root / f"{self.name}-{self.key()}"

    def train_feed(self, cache: ImageCache) -> Feed:
        """The training images: the seed's augmentation at k_train; for FixRes steps the evaluation preprocessing at k_test."""
        if self.kind == "train":
            return Feed(cache, np.asarray(self.train_indices), self.spec.resolution, "train", batch_size=self.batch_size)
        return Feed(cache, np.asarray(self.train_indices), self.k_test, "eval", batch_size=self.batch_size)

    def eval_feed(self, cache: ImageCache) -> Feed | None:
        """The held-out images, with the evaluation preprocessing at ``k_test`` (None without any)."""
        return Feed(cache, np.asarray(self.eval_indices), self.k_test, "eval", batch_size=100) if self.eval_indices else None


def _set_aside(path: Path, why: str, what_next: str) -> None:
    """Rename a damaged file to ``<name>.damaged`` (kept for inspection) and warn, naming it."""
    os.replace(path, path.with_name(path.name + ".damaged"))
    warnings.warn(f"{path} {why}: {what_next} (the damaged file is kept as {path.name}.damaged)", stacklevel=3)


def read_result(exp: Experiment, artifacts_dir: str | Path) -> dict | None:
    """The result of a finished experiment, or None (also when it is damaged or its checkpoint is gone)."""
    path = exp.folder(artifacts_dir) / "result.json"
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
        checkpoint = Path(result["checkpoint"])
    except (ValueError, KeyError, TypeError) as exc:
        _set_aside(path, f"is damaged ({type(exc).__name__})", f"running experiment {exp.name!r} again")
        return None
    if not checkpoint.is_file():
        _set_aside(path, f"names a checkpoint that is gone ({checkpoint})", f"running experiment {exp.name!r} again")
        return None
    damage = _checkpoint_damage(checkpoint, result.get("checkpoint_sha256"))
    if damage:
        _set_aside(checkpoint, f"is damaged ({damage})", f"running experiment {exp.name!r} again")
        _set_aside(path, "names a damaged checkpoint", f"running experiment {exp.name!r} again")
        return None
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checkpoint_damage(checkpoint: Path, sha256: str | None) -> str:
    """Why the finished checkpoint cannot be trusted ("" when it can): its bytes against the SHA-256 written
    beside it; a result written before the hash was recorded is checked by loading the checkpoint."""
    if sha256 is not None:
        return "" if _sha256(checkpoint) == sha256 else "its bytes do not match the SHA-256 in result.json"
    try:
        load_checkpoint(checkpoint)
    except Exception as exc:  # torch raises many types for a damaged file
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def _load_progress(path: Path, exp: Experiment) -> tuple[TrainState, dict | None]:
    """The training state and weights saved in ``path``; a fresh state (and no weights) when there is none.

    A damaged progress file is set aside with a warning naming it, and the experiment starts from scratch.
    """
    if not path.is_file():
        return TrainState(), None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        state, weights = saved["state"], saved["model"]
        if not isinstance(state, TrainState):
            raise TypeError(f"its state is a {type(state).__name__}")
        EffNet(exp.spec).load_state_dict(weights)  # the weights fit the experiment's network
    except Exception as exc:  # torch raises many types for a damaged file
        detail = str(exc).splitlines()[0] if str(exc) else ""
        _set_aside(path, f"is damaged ({type(exc).__name__}: {detail})", f"restarting experiment {exp.name!r} from scratch")
        return TrainState(), None
    return state, weights


def _start_model(exp: Experiment) -> torch.nn.Module:
    if exp.kind == "train":
        torch.manual_seed(exp.seed)
        return EffNet(exp.spec)
    if exp.init is None:
        raise ValueError(f"experiment {exp.name!r} of kind {exp.kind!r} needs an init checkpoint")
    model, _ = load_checkpoint(exp.init)
    return model


def run_experiment(exp: Experiment, cache: ImageCache, artifacts_dir: str | Path,
                   device: torch.device | str = "cpu", progress: bool = True, time_limit: TimeLimit | None = None) -> dict:
    """Run ``exp`` (or resume it, or read back its finished result) and return its result dict.

    ``time_limit`` bounds its training (:mod:`effnb.train.time_limit`): a run that falls behind it ends its schedule
    sooner, one ahead of it at its first decision may end later, and its result says after which epoch
    (``replanned_to``; None: as planned). A finished result is read back as it is.

    The experiment's folder is locked while it runs: another run of the same experiment waits for it,
    then reads its result back.
    """
    folder = exp.folder(artifacts_dir)
    done = read_result(exp, artifacts_dir)
    if done is not None:
        if progress:
            print(f"[{exp.name}] finished earlier: read back from experiments/{folder.name}")
        return done
    ensure_dir(folder, "experiment folder")
    with locked(folder / LOCK_FILE, f"[{exp.name}] waiting for another run that is training it in {folder}"):
        done = read_result(exp, artifacts_dir)
        if done is not None:
            if progress:
                print(f"[{exp.name}] finished by another run: read back from experiments/{folder.name}")
            return done
        _run(exp, cache, folder, device, progress, time_limit)
    return read_result(exp, artifacts_dir)  # the same JSON form as a result read back later


def _run(exp: Experiment, cache: ImageCache, folder: Path, device: torch.device | str, progress: bool,
         time_limit: TimeLimit | None = None) -> None:
    feed, val = exp.train_feed(cache), exp.eval_feed(cache)
    model = _start_model(exp)
    progress_path = folder / "progress.pt"
    state = TrainState()
    started = time.perf_counter()
    if exp.kind == "bn_recal":
        recalibrate_bn(model, feed, device, progress)
    else:
        state, weights = _load_progress(progress_path, exp)
        if weights is not None:
            model.load_state_dict(weights)
            if progress:
                print(f"[{exp.name}] resuming after epoch {state.epoch}")

        def save_progress(model, state, opt, sched) -> None:
            state.optimizer_state, state.scheduler_state = opt.state_dict(), sched.state_dict()
            torch_save(progress_path, {"model": model.state_dict(), "state": state})

        state = fit(model, feed, exp.train, val=val, seed=exp.seed, device=device, state=state,
                    on_epoch_end=save_progress, progress=progress, time_limit=time_limit)
    # resumed runs count the epochs done before the interruption too
    seconds = sum(r["seconds"] for r in state.history) if state.history else time.perf_counter() - started
    preprocessing = {"k_train": exp.spec.resolution, **TestSize.at(exp.k_test)._asdict(),
                     "cache_side": cache.side}
    checkpoint = save_checkpoint(folder / "model.pt", model, exp.spec, cache.classes, preprocessing,
                                 experiment=exp.name, key=exp.key())
    result = {
        "name": exp.name, "key": exp.key(), "kind": exp.kind, "spec": exp.spec.to_dict(),
        "train_config": exp.train.as_dict(), "k_train": exp.spec.resolution, "k_test": exp.k_test,
        "n_train": len(exp.train_indices), "n_eval": len(exp.eval_indices), "seed": exp.seed,
        "params": count_params(model), "flops": count_flops(exp.spec, exp.spec.resolution),
        "eval_flops": count_flops(exp.spec, exp.k_test), "history": state.history, "train_seconds": seconds,
        "replanned_to": state.epochs,
        "checkpoint": str(checkpoint), "checkpoint_sha256": _sha256(checkpoint),
    }
    if val is not None:
        result["eval"] = evaluate(model, val, device, progress, per_image=True)
    write_json(folder / "result.json", result)
    progress_path.unlink(missing_ok=True)
