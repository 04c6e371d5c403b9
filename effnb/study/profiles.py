"""Compute profiles of the study: one parameter picks how much compute every experiment gets.

``smoke`` proves every notebook runs (tests and CI), ``cpu`` is the real study sized for two CPU
cores, ``full`` follows the author's published code for a GPU (seed 000 gives φ = 4 but no schedule;
the author's code trains 150 epochs at lr 1e-3 and fine-tunes 40 epochs at lr 1e-4). Every notebook
reads its budget from here.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class DataBudget:
    """The decoded images and the test splits."""

    cache_side: int  # longer side of the decoded-image cache
    limit_per_class: int | None  # use only this many images of each class (None: all)
    test_size: int
    test2_size: int


@dataclass(frozen=True)
class SelectionBudget:
    """Selection experiments (baselines, grid, accuracy-vs-FLOPs) share one budget so they compare."""

    train_n: int | None
    epochs: int
    eval_n: int | None
    grid_phi: float
    scaling_phis: tuple[int, ...]  # phis trained on the selection budget for the accuracy-vs-FLOPs plot
    halving_rungs: tuple[float, ...] = ()  # successive halving (effnb.study.selection): the rungs before ``epochs``
    at_fixres: bool = False  # measure selection runs at their FixRes resolution after BN recalibration


@dataclass(frozen=True)
class FinalBudget:
    """The final model."""

    phi: int
    epochs: int  # budget in equivalent epochs at its training resolution (see effnb.train.recipes)
    train_n: int | None


@dataclass(frozen=True)
class FixResBudget:
    """The FixRes test-resolution sweep, BN recalibration and fine-tuning."""

    sweep_n: int | None
    sweep_factors: tuple[float, ...]  # test resolutions as multiples of the training resolution
    bn_recal_n: int
    finetune_n: int | None
    finetune_epochs: int
    finetune_lr: float
    head_finetune_epochs: int
    head_finetune_lr: float


# Profile.as_dict() keys: the flat field names a profile has always been recorded under (final.json and
# test2_read.json hash them), so provenance stays comparable across the nesting.
_FLAT_NAMES = {
    "selection": {"train_n": "select_train_n", "epochs": "select_epochs", "eval_n": "select_eval_n",
                  "at_fixres": "select_at_fixres"},
    "final": {"phi": "final_phi", "epochs": "final_epochs", "train_n": "final_train_n"},
}
_FLAT_ORDER = ("name", "description", "cache_side", "limit_per_class", "test_size", "test2_size", "recipe",
               "select_train_n", "select_epochs", "select_eval_n", "grid_phi", "scaling_phis", "final_phi",
               "final_epochs", "final_train_n", "sweep_n", "sweep_factors", "bn_recal_n", "finetune_n",
               "finetune_epochs", "finetune_lr", "head_finetune_epochs", "head_finetune_lr", "halving_rungs",
               "select_at_fixres")


@dataclass(frozen=True)
class Profile:
    """Budgets of every experiment of the study (images are counts of training images); ``budget_minutes`` is not
    part of :meth:`as_dict`: a planned run records its plan (:mod:`effnb.study.plan`) and the epochs it set."""

    name: str
    description: str
    data: DataBudget
    recipe: str  # the training recipe (effnb.train.recipes) of every training run: optimiser, lr, batch, schedule...
    selection: SelectionBudget
    final: FinalBudget
    fixres: FixResBudget
    budget_minutes: float | None = None  # effnb study's default --budget-minutes (None: the epochs above, fixed)

    def as_dict(self) -> dict:
        """Every budget as one flat dict, under the names provenance records hash (see :data:`_FLAT_NAMES`)."""
        flat: dict = {"name": self.name, "description": self.description, "recipe": self.recipe}
        for group in ("data", "selection", "final", "fixres"):
            part = getattr(self, group)
            renames = _FLAT_NAMES.get(group, {})
            flat.update({renames.get(f.name, f.name): getattr(part, f.name) for f in fields(part)})
        return {key: flat[key] for key in _FLAT_ORDER}

    def summary(self, final_planned: bool = False) -> str:
        """A short human-readable line for the top of each report; ``final_planned``: the final model's epochs are
        still to be fixed by the plan (in notebook 04), so its line says so instead of the profile's number."""
        d, s, f, x = self.data, self.selection, self.final, self.fixres
        n = "all images" if d.limit_per_class is None else f"{d.limit_per_class} images per class"
        epochs = "equivalent epochs fixed by the plan in 04" if final_planned else f"{f.epochs:g} equivalent epochs"
        return (f"profile '{self.name}' ({self.description}): {n}; recipe '{self.recipe}'; selection runs {s.epochs:g} "
                f"equivalent epochs on {s.train_n or 'all'} images; final model phi={f.phi}, {epochs} on "
                f"{f.train_n or 'the full train split'}; fine-tune {x.finetune_epochs} epoch(s) on "
                f"{x.finetune_n or 'the full train split'}")


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", description="tests and CI: every notebook end to end in minutes", recipe="budget",
        data=DataBudget(cache_side=96, limit_per_class=150, test_size=60, test2_size=60),
        selection=SelectionBudget(train_n=120, epochs=1, eval_n=None, grid_phi=1, scaling_phis=(2,),
                                  halving_rungs=(1,), at_fixres=True),
        final=FinalBudget(phi=1, epochs=1, train_n=None),
        fixres=FixResBudget(sweep_n=None, sweep_factors=(1.0, 1.5, 2.0), bn_recal_n=64, finetune_n=64,
                            finetune_epochs=1, finetune_lr=1e-4, head_finetune_epochs=1, head_finetune_lr=1e-3),
    ),
    # With its budget of 120 minutes (effnb.study.plan) the selection epochs are kept if they fit and final.epochs
    # is replaced by what the minutes left buy on the machine at hand; the epochs below are the fixed-epoch run
    # (--budget-minutes 0), sized for an Intel Xeon (timings: reports/history.md). Rungs are whole equivalent epochs: the engine trains whole epochs, and
    # progressive resizing needs two or more. final.epochs is the slack. phi = 1 for 23 epochs is the final model
    # because it beat phi = 2 in the same minutes (reports/ablation-phi.md), as the README's declared rule asks.
    "cpu": Profile(
        name="cpu", description="the real study on two CPU cores, under two hours", recipe="budget",
        data=DataBudget(cache_side=200, limit_per_class=None, test_size=4000, test2_size=4000),
        selection=SelectionBudget(train_n=None, epochs=3, eval_n=None, grid_phi=1, scaling_phis=(),
                                  halving_rungs=(1,), at_fixres=True),
        final=FinalBudget(phi=1, epochs=23, train_n=None),
        fixres=FixResBudget(sweep_n=600, sweep_factors=(1.0, 1.15, 1.3, 1.45, 1.6, 1.8), bn_recal_n=1000,
                            finetune_n=6000, finetune_epochs=1, finetune_lr=1e-4, head_finetune_epochs=1,
                            head_finetune_lr=1e-3),
        budget_minutes=120,
    ),
    "full": Profile(
        name="full", description="the author's published schedule, for a GPU", recipe="published",
        data=DataBudget(cache_side=320, limit_per_class=None, test_size=4000, test2_size=4000),
        selection=SelectionBudget(train_n=None, epochs=30, eval_n=None, grid_phi=1, scaling_phis=(2, 3),
                                  halving_rungs=(8, 15), at_fixres=True),
        final=FinalBudget(phi=4, epochs=150, train_n=None),
        fixres=FixResBudget(sweep_n=None, sweep_factors=(0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5), bn_recal_n=5000,
                            finetune_n=None, finetune_epochs=40, finetune_lr=1e-4, head_finetune_epochs=5,
                            head_finetune_lr=1e-3),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``smoke``, ``cpu`` or ``full``)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
