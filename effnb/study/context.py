"""The study's plumbing shared by the notebooks: data preparation, notebook outputs, and experiment recipes.

Each notebook opens with :func:`open_study` and ends with :meth:`Study.conclude`, which writes its results
and findings to ``<artifacts_dir>/<name>.json``; later notebooks (and the index page) read them with
:meth:`Study.output` (see :mod:`effnb.study.outputs`), so the notebooks stay narrative and none repeats another's code.
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from effnb import __version__
from effnb.data.cache import ImageCache, build_cache
from effnb.data.download import resolve_data_dir
from effnb.data.duplicates import find_duplicates, spanning
from effnb.data.splits import make_splits, subset
from effnb.nn.model import NetSpec
from effnb.study.outputs import NOTEBOOKS, Typed, read_output, write_output
from effnb.study.plan import apply_plan, read_plan
from effnb.study.profiles import Profile, get_profile
from effnb.train.experiments import Experiment
from effnb.train.fit import TrainConfig
from effnb.train.recipes import Recipe, get_recipe
from effnb.utils.atomic import ensure_dir
from effnb.utils.device import cpu_name, pick_device

# The FixRes pipeline's models, by id, in order: the trained model at its two test resolutions, then the three
# fine-tuning variants at the larger one (the keys of Study.fixres_experiments). Tables look rows up by id.
FIXRES_STEPS = {
    "trained": "trained, tested at the training resolution",
    "larger_test": "same model, tested at the FixRes resolution",
    "bn_recal": "BN statistics recalibrated (no gradient step)",
    "head": "classifier and last BN fine-tuned (the FixRes paper)",
    "full": "whole network fine-tuned (as the author's published code does)",
}


@dataclass
class Study:
    """The data of one study run: the decoded cache, the splits, the profile and the seed.

    ``splits`` holds ``train`` and ``test`` only: the final split ``test2`` is read by notebook 06 alone,
    through :func:`effnb.study.holdout.read_test2`.
    """

    cache: ImageCache
    splits: dict[str, np.ndarray]
    profile: Profile
    seed: int
    artifacts_dir: Path
    root: Path
    test2: InitVar[np.ndarray | None] = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    recipe: Recipe = field(default=None)  # type: ignore[assignment]  # None: the profile's recipe

    def __post_init__(self, test2: np.ndarray | None) -> None:
        if self.recipe is None:
            self.recipe = get_recipe(self.profile.recipe)
        self._test2 = np.zeros(0, dtype=np.int64) if test2 is None else test2

    def split_indices(self, name: str) -> np.ndarray:
        """Any split by name, ``test2`` included: for tools outside the study (``effnb export-split``) and for
        :func:`effnb.study.holdout.read_test2`; notebooks 01-05 use ``splits``."""
        return self._test2 if name == "test2" else self.splits[name]

    def label_counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns, ``test2`` included), with a total row."""
        counts = pd.DataFrame({name: np.bincount(self.cache.labels[self.split_indices(name)],
                                                 minlength=len(self.cache.classes))
                               for name in (*self.splits, "test2")}, index=self.cache.classes)
        counts.loc["total"] = counts.sum()
        return counts

    def groups_across_splits(self, groups: np.ndarray) -> dict[str, int]:
        """How many duplicate groups span two splits (``test2`` included, by membership only, no pixels): under a
        split that ignored them, and under the study's splits."""
        d = self.profile.data
        ignoring = make_splits(self.cache.labels, self.seed, d.test_size, d.test2_size)
        used = {**self.splits, "test2": self._test2}
        return {"groups across splits, a split ignoring them": spanning(groups, ignoring),
                "groups across splits, the study's splits": spanning(groups, used)}

    @property
    def data_key(self) -> str:
        """Identifies the decoded data (pixels, labels, classes): experiments on other data get other keys."""
        return self.cache.fingerprint

    def output(self, name: str, kind: type[Typed] | None = None) -> dict | Typed:
        """An earlier notebook's output, as a dict or as the record ``kind`` (see :func:`effnb.study.outputs.read_output`)."""
        return read_output(self.artifacts_dir, name, kind=kind)

    def run_info(self) -> dict:
        """What a reader needs to place the numbers: profile, seed, data, hardware, versions."""
        cuda = f", {torch.cuda.get_device_name()}" if self.device.type == "cuda" else ""
        return {"profile": self.profile.name, "profile_description": self.profile.description, "seed": self.seed,
                "data": f"{self.root.name} ({len(self.cache):,} images, {len(self.cache.skipped)} skipped)",
                "device": f"{self.device}{cuda}", "effnb": __version__, "torch": torch.__version__,
                "python": platform.python_version(),
                "machine": f"{cpu_name()} ({platform.machine()}) with {os.cpu_count()} CPU cores "
                           f"({torch.get_num_threads()} torch threads)"}

    def portable(self, row: dict) -> dict:
        """``row`` with its ``checkpoint`` relative to the artifacts folder, so outputs hold no paths of this machine."""
        return {**row, "checkpoint": os.path.relpath(row["checkpoint"], self.artifacts_dir)}

    def conclude(self, notebook: str, results: dict, findings: list[str]) -> None:
        """A notebook's last call: write its results and findings for the next notebooks, and show the findings."""
        from IPython.display import (  # lazily: the CLI imports this module without IPython
            Markdown,
            display,
        )

        write_output(self.artifacts_dir, notebook, {"run": self.run_info(), **results, "findings": findings})
        display(Markdown("\n".join(f"- {line}" for line in findings)))

    def train_config(self, k_train: int, epochs: float, **overrides) -> TrainConfig:
        """The study's recipe for a budget of ``epochs`` equivalent epochs at ``k_train`` (engine fields overridden)."""
        return self.recipe.train_config(k_train, epochs, **overrides)

    @property
    def decision_indices(self) -> tuple[int, ...]:
        """The `test` images every decision of the study is measured on (the same for every candidate)."""
        return tuple(subset(self.splits["test"], self.profile.selection.eval_n, self.seed).tolist())

    def selection_experiment(self, spec: NetSpec, epochs: float | None = None) -> Experiment:
        """A baseline / grid / scaling run, labelled by the spec's name: all share the training and evaluation
        images. ``epochs`` defaults to the selection budget (the last rung of a successive halving)."""
        p = self.profile
        epochs = p.selection.epochs if epochs is None else epochs
        return Experiment(
            name=spec.name, spec=spec, train=self.train_config(spec.resolution, epochs),
            train_indices=tuple(subset(self.splits["train"], p.selection.train_n, self.seed).tolist()),
            eval_indices=self.decision_indices, batch_size=self.recipe.batch_size, seed=self.seed, data_key=self.data_key)

    @property
    def recalibration_indices(self) -> tuple[int, ...]:
        """The training images batch-norm statistics are re-estimated on (the profile's ``fixres.bn_recal_n``)."""
        p = self.profile
        return tuple(subset(subset(self.splits["train"], p.fixres.finetune_n, self.seed), p.fixres.bn_recal_n, self.seed).tolist())

    def bn_recal_experiment(self, name: str, spec: NetSpec, init: str, k_test: int) -> Experiment:
        """Re-estimate the BN statistics of checkpoint ``init`` at ``k_test`` on :attr:`recalibration_indices`
        (evaluation preprocessing, no gradient step), then measure it on the decision images."""
        return Experiment(name=name, kind="bn_recal", spec=spec, train=self.train_config(k_test, 0), k_test=k_test, init=init,
                          train_indices=self.recalibration_indices, eval_indices=self.decision_indices,
                          batch_size=self.recipe.batch_size, seed=self.seed, data_key=self.data_key)

    def final_experiment(self, spec: NetSpec, epochs: float | None = None) -> Experiment:
        """The final model: the full training split (or the profile's share of it)."""
        p = self.profile
        return Experiment(
            name=f"final-{spec.name}", spec=spec, train=self.train_config(spec.resolution, epochs or p.final.epochs),
            train_indices=tuple(subset(self.splits["train"], p.final.train_n, self.seed).tolist()),
            eval_indices=tuple(subset(self.splits["test"], p.selection.eval_n, self.seed).tolist()),
            batch_size=self.recipe.batch_size, seed=self.seed, data_key=self.data_key)

    def fixres_experiments(self, spec: NetSpec, init: str, k_test: int) -> dict[str, Experiment]:
        """The three FixRes variants at test resolution ``k_test``, all from checkpoint ``init``.

        ``bn_recal``: re-estimate BN statistics only; ``head``: train classifier + last BN (the FixRes
        paper's recipe); ``full``: fine-tune everything (as the author's published code does). All see the
        training images through the evaluation preprocessing at ``k_test``, with the recipe's optimiser, no EMA,
        and a cosine schedule.
        """
        p = self.profile
        plain = dict(schedule="cosine", ema_decay=None, size_start=1.0, p_range_start=None)
        train_idx = tuple(subset(self.splits["train"], p.fixres.finetune_n, self.seed).tolist())
        common = dict(spec=spec, k_test=k_test, eval_indices=self.decision_indices, init=init,
                      batch_size=self.recipe.batch_size, seed=self.seed, data_key=self.data_key)
        return {
            "bn_recal": self.bn_recal_experiment("fixres-bn_recal", spec, init, k_test),
            "head": Experiment(name="fixres-head", kind="finetune", train_indices=train_idx,
                               train=self.train_config(k_test, p.fixres.head_finetune_epochs, lr=p.fixres.head_finetune_lr,
                                                       weight_decay=0.0, trainable="head", **plain),
                               **common),
            "full": Experiment(name="fixres-full", kind="finetune", train_indices=train_idx,
                               train=self.train_config(k_test, p.fixres.finetune_epochs, lr=p.fixres.finetune_lr, **plain),
                               **common),
        }


def resolve_artifacts_dir(artifacts_dir: str | Path | None) -> Path:
    """``artifacts_dir``, or by default ``artifacts/`` at the top of this checkout (whatever the working folder;
    outside a checkout, in the working folder), the folder ``make study`` writes."""
    if artifacts_dir is not None:
        return Path(artifacts_dir)
    checkout = Path(__file__).resolve().parents[2]
    return (checkout if (checkout / "notebooks").is_dir() else Path.cwd()) / "artifacts"


def prepare_study(profile: str | Profile, data_dir: str | Path | None, artifacts_dir: str | Path | None,
                  seed: int = 0) -> Study:
    """Find (or download) the data, decode it once into the cache (read back if built before), find its exact and
    near duplicates (read back too), split it with each group of copies inside one split. The epochs are the plan's where the artifacts hold one (:mod:`effnb.study.plan`), else the profile's."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    artifacts_dir = ensure_dir(resolve_artifacts_dir(artifacts_dir), "artifacts folder")
    profile = apply_plan(profile, read_plan(artifacts_dir))
    root = resolve_data_dir(data_dir, download_dir=artifacts_dir / "downloads")
    limit = profile.data.limit_per_class
    cache = build_cache(root, artifacts_dir / f"cache-{profile.data.cache_side}-{limit or 'all'}",
                        side=profile.data.cache_side, limit_per_class=limit, seed=seed)
    groups = find_duplicates(cache, root).groups  # copies of one photo stay in one split
    splits = make_splits(cache.labels, seed, profile.data.test_size, profile.data.test2_size, groups=groups)
    test2 = splits.pop("test2")
    return Study(cache, splits, profile, seed, artifacts_dir, root, test2)


def open_study(notebook: str, profile: str | Profile, data_dir: str | Path | None,
               artifacts_dir: str | Path | None, seed: int = 0) -> Study:
    """Every notebook's first call: check the earlier notebooks ran, prepare the data, pick the device, and state
    the run (profile, data, hardware, versions) once at the top of the report."""
    from IPython.display import (  # lazily: the CLI imports this module without IPython
        Markdown,
        display,
    )

    artifacts_dir = resolve_artifacts_dir(artifacts_dir)
    for earlier in list(NOTEBOOKS)[:list(NOTEBOOKS).index(notebook)]:
        read_output(artifacts_dir, earlier)
    with contextlib.redirect_stdout(sys.stderr):  # the cache's own summary: on the terminal, not in the report
        study = prepare_study(profile, data_dir, artifacts_dir, seed)
    study.device = pick_device()
    info = study.run_info()
    plan = read_plan(artifacts_dir)
    planned = plan is not None and plan["final"]["epochs"] is None
    display(Markdown(f"**Run:** {study.profile.summary(final_planned=planned)}. Seed {info['seed']}; data {info['data']}; device "
                     f"{info['device']}; {info['machine']}; effnb {info['effnb']}, torch {info['torch']}, "
                     f"Python {info['python']}."))
    return study
