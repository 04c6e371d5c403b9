"""The rows of ``effnb ablate``: each ablation's variants (a recipe on a network, with what it changes against the
reference) and their default budgets: the recipe's levers at a small budget (:func:`default_variants`), the study's
final network at each phi at equal minutes (:func:`phi_variants`), and the recipe's levers on the final network at
the final model's budget (:func:`final_variants`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from effnb import seed_study
from effnb.nn.model import BASELINES, NetSpec
from effnb.nn.scaling import scale
from effnb.study.profiles import Profile
from effnb.train.recipes import Recipe, get_recipe

REFERENCE = "onecycle"
PHI_REFERENCE = "phi2"
PLAN_RECORD = Path(__file__).resolve().parents[2] / "reports" / "models" / "plan.json"  # the committed study's plan

# Training time per image of C scaled by phi, relative to phi = 2, measured once with effnb bench and fixed here so
# the rows' budgets are reproducible (the measurements: reports/history.md).
PHI_COST = {0: 0.35, 1: 0.48, 2: 1.0, 3: 2.07}


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a recipe, the network and what it changes against the reference.

    ``budget`` (equivalent epochs at ``spec.resolution``) overrides the run's budget, for rows at equal minutes.
    """

    name: str
    what: str
    recipe: Recipe
    spec: NetSpec = BASELINES["C"]
    budget: float | None = None


def default_variants(steps: int = 1000) -> list[Variant]:
    """The recipe's levers, each changed alone on the reference recipe (effnb's first default), then the ones that
    paid, stacked.

    ``steps`` (optimiser steps of the run) sets the EMA decay so the average spans about the last 10 % of them.
    """
    ref = get_recipe(REFERENCE)
    linear = ref.with_changes(schedule="linear")
    decay = round(max(0.5, 1 - 10 / steps), 4)
    rising = dict(p_range_start=(0.5, 1.0))
    return [
        Variant(REFERENCE, "reference: AdamW, one-cycle to lr 2e-3, label smoothing 0.1", ref),
        Variant("linear", "lr decays linearly to zero over the budget (Li et al. 2020) instead of one-cycle", linear),
        Variant("published", "the author's published code: Adam, lr 1e-3 constant, plain cross-entropy",
                get_recipe("published").with_changes(epochs=ref.epochs)),
        Variant("progressive", "+ progressive resizing 0.5 -> 1 x k_train, crops U(0.5, 1.0) -> U(0.2, 0.7)",
                ref.with_changes(size_start=0.5, **rising)),
        Variant("ema", f"+ EMA of weights and BN buffers (decay {decay} per step), the average evaluated",
                ref.with_changes(ema_decay=decay)),
        Variant("weak-aug", "weaker augmentation throughout: crops U(0.4, 0.9) (sigma and FixRes size change)",
                ref.with_changes(p_range=(0.4, 0.9))),
        Variant("batch32", "batch 32 instead of 64 (same lr)", ref.with_changes(batch_size=32)),
        Variant("rising-aug", "+ augmentation rising over training: crops U(0.5, 1.0) -> U(0.2, 0.7)",
                ref.with_changes(**rising)),
        Variant("combined", "linear decay + EMA + progressive resizing with rising augmentation",
                linear.with_changes(ema_decay=decay, size_start=0.5, **rising)),
        # the levers that paid, stacked
        Variant("weak-aug+batch32", "weaker augmentation U(0.4, 0.9) and batch 32",
                ref.with_changes(p_range=(0.4, 0.9), batch_size=32)),
        Variant("weak+progressive+batch32", "progressive resizing 0.5 -> 1 x k_train with crops U(0.6, 1.0) -> "
                "U(0.4, 0.9), batch 32", ref.with_changes(p_range=(0.4, 0.9), p_range_start=(0.6, 1.0),
                                                          size_start=0.5, batch_size=32)),
    ]


def final_variants(recipe: Recipe, spec: NetSpec, steps: int) -> list[Variant]:
    """The study's ``recipe`` on its final network ``spec`` (the reference, first), and each lever of the recipe
    changed alone on it, in the order they are run (the ones most likely to matter first): EMA, label smoothing,
    peak learning rate, weight decay, the crop range. Flip TTA needs no row: every row is evaluated with and
    without it. ``steps`` (optimiser steps of the run) sets the EMA decay so the average spans about the last 10 %.
    """
    t, decay = recipe.train, round(max(0.5, 1 - 10 / steps), 4)
    low, high = t.p_range
    return [
        Variant(recipe.name, f"reference: the study's `{recipe.name}` recipe ({recipe.about})", recipe, spec),
        Variant("ema", f"+ EMA of weights and BN buffers (decay {decay} per step), the average evaluated",
                recipe.with_changes(ema_decay=decay), spec),
        Variant("no-smoothing", f"label smoothing 0 instead of {t.label_smoothing:g}",
                recipe.with_changes(label_smoothing=0.0), spec),
        Variant("lr-half", f"peak lr {t.lr / 2:g} instead of {t.lr:g}", recipe.with_changes(lr=t.lr / 2), spec),
        Variant("lr-double", f"peak lr {t.lr * 2:g} instead of {t.lr:g}", recipe.with_changes(lr=t.lr * 2), spec),
        Variant("wd-half", f"weight decay {t.weight_decay / 2:g} instead of {t.weight_decay:g}",
                recipe.with_changes(weight_decay=t.weight_decay / 2), spec),
        Variant("wd-double", f"weight decay {t.weight_decay * 2:g} instead of {t.weight_decay:g}",
                recipe.with_changes(weight_decay=t.weight_decay * 2), spec),
        Variant("crops-smaller", f"last epoch's crops U({low / 2:g}, {high:g}) instead of U({low:g}, {high:g}) "
                "(sigma and FixRes size change)", recipe.with_changes(p_range=(low / 2, high)), spec),
        Variant("crops-larger", f"last epoch's crops U({(low + 1) / 2:g}, 1) instead of U({low:g}, {high:g}) "
                "(sigma and FixRes size change)", recipe.with_changes(p_range=((low + 1) / 2, 1.0)), spec),
    ]


def planned_final_epochs(profile: Profile, plan: Path = PLAN_RECORD) -> float:
    """The final model's equivalent epochs in the committed study's plan (``plan``) when it is this profile's, else
    the profile's own: the default budget of the rows at the final budget."""
    try:
        record = json.loads(plan.read_text())
    except (OSError, ValueError):
        return profile.final.epochs
    return record["final"]["epochs"] if record.get("profile") == profile.name else profile.final.epochs


def final_network(profile: Profile) -> NetSpec:
    """The study's final network: baseline C scaled with the seed's experiment 1 for alpha, beta, gamma at the
    profile's phi (the grid's choice when the final rows ran; the study committed at cadd1d5 chose experiment 3)."""
    return scale(BASELINES["C"], *seed_study.GRID_MULTIPLIERS[0], profile.final.phi)


def phi2_budget(profile: Profile) -> int:
    """The profile's final-model minutes as equivalent epochs at phi = 2 (by :data:`PHI_COST`), at least one: the
    default budget of the phi rows."""
    return max(1, round(profile.final.epochs * PHI_COST[profile.final.phi] / PHI_COST[2]))


def phi_variants(recipe: Recipe, budget: float, phis: tuple[int, ...] = (2, 1, 3, 0)) -> list[Variant]:
    """The study's final network (baseline C, the seed's experiment 1 for alpha, beta, gamma) at each phi, trained
    with ``recipe`` for as many minutes as phi = 2 takes for ``budget`` equivalent epochs (by :data:`PHI_COST`):
    which phi buys the most accuracy per minute. The first is the reference."""
    rows = []
    for phi in phis:
        spec = scale(BASELINES["C"], *seed_study.GRID_MULTIPLIERS[0], phi)
        epochs = round(budget / PHI_COST[phi], 1)
        rows.append(Variant(f"phi{phi}", f"phi = {phi} at {spec.resolution} px, {epochs:g} equivalent epochs "
                            f"(the minutes of phi = 2's {budget:g})", recipe, spec, epochs))
    return rows
