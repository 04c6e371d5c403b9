"""Compute profiles of the study: one parameter picks how much compute every experiment gets.

``smoke`` proves every notebook runs (tests and CI), ``cpu`` is the real study sized for two CPU
cores, ``full`` follows the author's published code for a GPU (seed 000 gives φ = 4 but no schedule;
the author's code trains 150 epochs at lr 1e-3 and fine-tunes 40 epochs at lr 1e-4). Every notebook
reads its budget from here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Profile:
    """Budgets of every experiment of the study (images are counts of training images)."""

    name: str
    description: str
    cache_side: int  # longer side of the decoded-image cache
    limit_per_class: int | None  # use only this many images of each class (None: all)
    test_size: int
    test2_size: int
    recipe: str  # the training recipe (effnb.recipes) of every training run: optimiser, lr, batch, schedule...
    # selection experiments (baselines, grid, accuracy-vs-FLOPs) share one budget so they compare
    select_train_n: int | None
    select_epochs: int
    select_eval_n: int | None
    grid_phi: float
    scaling_phis: tuple[int, ...]  # phis trained on the selection budget for the accuracy-vs-FLOPs plot
    # the final model
    final_phi: int
    final_epochs: int  # budget in equivalent epochs at its training resolution (see effnb.recipes)
    final_train_n: int | None
    # FixRes
    sweep_n: int | None
    sweep_factors: tuple[float, ...]  # test resolutions as multiples of the training resolution
    bn_recal_n: int
    finetune_n: int | None
    finetune_epochs: int
    finetune_lr: float
    head_finetune_epochs: int
    head_finetune_lr: float
    # successive halving (effnb.selection): the shorter rungs before the selection budget ``select_epochs``
    halving_rungs: tuple[float, ...] = ()
    select_at_fixres: bool = False  # measure selection runs at their FixRes resolution after BN recalibration

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable line for the top of each report."""
        n = "all images" if self.limit_per_class is None else f"{self.limit_per_class} images per class"
        return (f"profile '{self.name}' ({self.description}): {n}; recipe '{self.recipe}'; selection runs {self.select_epochs} epochs on "
                f"{self.select_train_n or 'all'} images; final model phi={self.final_phi}, {self.final_epochs} epochs on "
                f"{self.final_train_n or 'the full train split'}; fine-tune {self.finetune_epochs} epoch(s) on "
                f"{self.finetune_n or 'the full train split'}")


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", description="tests and CI: every notebook end to end in minutes",
        cache_side=96, limit_per_class=150, test_size=60, test2_size=60, recipe="budget",
        select_train_n=120, select_epochs=1, select_eval_n=None, grid_phi=1, scaling_phis=(2,),
        final_phi=1, final_epochs=1, final_train_n=None,
        sweep_n=None, sweep_factors=(1.0, 1.5, 2.0), bn_recal_n=64,
        finetune_n=64, finetune_epochs=1, finetune_lr=1e-4, head_finetune_epochs=1, head_finetune_lr=1e-3,
        halving_rungs=(1,), select_at_fixres=True,
    ),
    # The cpu plan, in minutes on 2 idle cores (arithmetic on measured throughputs, not a measurement of the
    # whole: fit() C @64 450 img/s, A 291, grid candidates 216-293 (3-epoch runs of the first cpu study), B assumed
    # 300; the final model if the seed's grid experiment 1 stands is phi=2 at 97 px, ~124 img/s; the budget
    # recipe's progressive resizing costs ~20 % more wall time per equivalent epoch than fixed-size training in
    # reports/ablation.md; its weaker crops put the FixRes test resolution at ~1.4 x k_train instead of ~2 x,
    # which halves the cost of every evaluation at the test resolution):
    #   01_data 0.5 | 02_baselines 16 (A, B, C 2 epochs; C + the better of A/B 6) | 03_grid 32 (six at
    #   1 epoch, three at 2, two at 6) | 04_scaling 30 (final model, 12 epochs) | 05_finetune 8 (sweep with BN
    #   re-estimated at 6 resolutions on 4,000 + 1,000 images, 3 variants, plot sweeps on 600) | 06_final 3 |
    #   kernels and rendering 2.5 -> about 92 min, leaving 28 for the 30 % swings seen on these machines.
    # final_epochs is the slack: one epoch of the 97 px model is about 2.5 minutes.
    "cpu": Profile(
        name="cpu", description="the real study on two CPU cores, under two hours",
        cache_side=200, limit_per_class=None, test_size=4000, test2_size=4000, recipe="budget",
        select_train_n=None, select_epochs=6, select_eval_n=None, grid_phi=1, scaling_phis=(),
        final_phi=2, final_epochs=12, final_train_n=None,
        sweep_n=600, sweep_factors=(1.0, 1.25, 1.5, 1.75, 2.0, 2.25), bn_recal_n=1000,
        finetune_n=8000, finetune_epochs=1, finetune_lr=1e-4, head_finetune_epochs=1, head_finetune_lr=1e-3,
        halving_rungs=(1, 2), select_at_fixres=True,
    ),
    "full": Profile(
        name="full", description="the author's published schedule, for a GPU",
        cache_side=320, limit_per_class=None, test_size=4000, test2_size=4000, recipe="seed",
        select_train_n=None, select_epochs=30, select_eval_n=None, grid_phi=1, scaling_phis=(2, 3),
        final_phi=4, final_epochs=150, final_train_n=None,
        sweep_n=None, sweep_factors=(0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5), bn_recal_n=5000,
        finetune_n=None, finetune_epochs=40, finetune_lr=1e-4, head_finetune_epochs=5, head_finetune_lr=1e-3,
        halving_rungs=(8, 15), select_at_fixres=True,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``smoke``, ``cpu`` or ``full``)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
