"""Choosing among candidates with a budget that separates them: successive halving and a pre-declared rule.

All candidates train briefly (the first rung); the better half of the challengers, and always the
incumbent, train again with a longer budget (the next rung), and so on, until the last rung, where
every survivor has the full selection budget and :class:`~effnb.study.stats.DecisionRule` compares each
challenger with the incumbent on the same test images. Each rung trains every candidate from scratch
on the same images with the same seed; every run is an :class:`~effnb.train.experiments.Experiment`, so an
interrupted selection resumes and a finished run is read back.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pandas as pd

from effnb.data.fixres import recommended_test_resolution
from effnb.nn.model import NetSpec
from effnb.study.stats import Decision, DecisionRule, accuracy_interval
from effnb.train.experiments import run_experiment

if TYPE_CHECKING:
    from effnb.study.context import Study

T = TypeVar("T")


def halvings(n_challengers: int) -> int:
    """How many times the challengers are halved (rounding down) before one is left."""
    count = 0
    while n_challengers > 1:
        n_challengers //= 2
        count += 1
    return count


def rung_budgets(rungs: Sequence[float], n_challengers: int) -> list[float]:
    """The budgets a selection among ``n_challengers`` uses: the last ``halvings + 1`` of ``rungs``.

    The last rung is the full selection budget, the same for every selection of the study; a selection
    with fewer challengers starts later. With fewer rungs than halvings, all rungs are used and the last one
    keeps more than one challenger.
    """
    if not rungs:
        raise ValueError("a selection needs at least one rung (the selection budget)")
    return list(rungs[-(halvings(n_challengers) + 1):])


@dataclass(frozen=True)
class Rung:
    """One rung: its budget, every candidate's measured result, and who goes on to the next rung."""

    index: int
    epochs: float
    results: dict[str, dict]  # candidate -> result whose "eval" is the measurement (accuracy, n, correct)
    promoted: tuple[str, ...]  # empty on the last rung


@dataclass(frozen=True)
class Selection:
    """The rungs of a successive-halving selection and the decision on its last rung."""

    rungs: tuple[Rung, ...]
    decision: Decision

    @property
    def chosen(self) -> str:
        return self.decision.chosen

    def final(self, name: str) -> dict:
        """``name``'s result on the last rung (the full selection budget)."""
        return self.rungs[-1].results[name]

    def latest(self) -> dict[str, dict]:
        """Every candidate's result from the last rung it reached (its longest run)."""
        return {name: result for rung in self.rungs for name, result in rung.results.items()}

    def table(self) -> pd.DataFrame:
        """One row per rung and candidate: budget (equivalent epochs, epochs x (size / k_train)², with the real
        epochs beside), size, cost, accuracy with its 95 % interval, promoted or not."""
        rows = []
        for rung in self.rungs:
            for name, r in rung.results.items():
                ev = r["eval"]
                low, high = accuracy_interval(ev["accuracy"], ev["n"])
                rows.append({"rung": rung.index + 1, "eq. epochs": rung.epochs, "real epochs": len(r.get("history", ())),
                             "candidate": name, "params": r["params"],
                             "MFLOPs (2/MAC)": r["flops"] / 1e6, "train min": r["train_seconds"] / 60,
                             "test res (px)": ev["k_test"], "acc %": 100 * ev["accuracy"], "low %": 100 * low,
                             "high %": 100 * high,
                             "next": "promoted" if name in rung.promoted else ("decided by the rule" if rung is self.rungs[-1] else "stopped")})
        return pd.DataFrame(rows).round({"MFLOPs (2/MAC)": 2, "train min": 1, "acc %": 2, "low %": 2, "high %": 2})

    def as_dict(self) -> dict:
        """JSON-ready: every rung's results and the decision."""
        return {"chosen": self.chosen, "decision": self.decision.as_dict(),
                "rungs": [{"rung": r.index + 1, "epochs": r.epochs, "results": r.results, "promoted": list(r.promoted)}
                          for r in self.rungs]}


def successive_halving(candidates: Mapping[str, T], rule: DecisionRule, rungs: Sequence[float],
                       measure: Callable[[str, T, float], dict], seed: int = 0) -> Selection:
    """Select among ``candidates`` (the incumbent of ``rule`` among them) by successive halving.

    ``measure(name, candidate, epochs)`` trains one candidate with a budget of ``epochs`` and returns its
    result, whose ``"eval"`` holds the measurement on the selection's test images (``accuracy``, ``n``,
    ``k_test`` and per-image ``correct``). Challengers are ranked by accuracy; ties keep the given order.
    """
    if rule.incumbent not in candidates:
        raise ValueError(f"the incumbent {rule.incumbent!r} is not among the candidates {list(candidates)}")
    alive = list(candidates)
    budgets = rung_budgets(rungs, len(alive) - 1)
    done: list[Rung] = []
    for index, epochs in enumerate(budgets):
        results = {name: measure(name, candidates[name], epochs) for name in alive}
        promoted: tuple[str, ...] = ()
        if index < len(budgets) - 1:
            challengers = sorted((n for n in alive if n != rule.incumbent), key=lambda n: -results[n]["eval"]["accuracy"])
            keep = set(challengers[:max(1, len(challengers) // 2)]) | {rule.incumbent}
            promoted = tuple(n for n in alive if n in keep)
            alive = list(promoted)
        done.append(Rung(index, epochs, results, promoted))
    decision = rule.decide({name: r["eval"]["correct"] for name, r in done[-1].results.items()}, seed)
    return Selection(tuple(done), decision)


def measure_candidate(study: Study, spec: NetSpec, epochs: float, sigma: float | None = None) -> dict:
    """Train ``spec`` on the selection images with a budget of ``epochs`` and measure it on the decision images.

    With the profile's ``selection.at_fixres`` and the data's ``sigma``, the measurement is taken where the model
    will be used: at the FixRes test resolution, after re-estimating the BN statistics there (no gradient
    step); the training run's own evaluation at k_train is kept as ``eval_at_k_train``. Otherwise the
    measurement is the training run's evaluation at k_train.
    """
    exp = study.selection_experiment(spec, epochs)
    trained = run_experiment(exp, study.cache, study.artifacts_dir, study.device)
    if not (study.profile.selection.at_fixres and sigma):
        return trained
    k_test, _ = recommended_test_resolution(spec.resolution, sigma)
    recal = run_experiment(study.bn_recal_experiment(f"{exp.name}-bn_recal", spec, trained["checkpoint"], k_test),
                           study.cache, study.artifacts_dir, study.device)
    return trained | {"eval": recal["eval"], "eval_at_k_train": trained["eval"],
                      "measure_seconds": recal["train_seconds"], "measured_checkpoint": recal["checkpoint"]}


def select(study: Study, candidates: Mapping[str, NetSpec], rule: DecisionRule, sigma: float | None = None) -> Selection:
    """Successive halving over the profile's rungs (``selection.halving_rungs`` then ``selection.epochs``), measured by
    :func:`measure_candidate`, decided by ``rule`` on the last rung."""
    p = study.profile
    return successive_halving(candidates, rule, (*p.selection.halving_rungs, p.selection.epochs),
                              lambda _, spec, epochs: measure_candidate(study, spec, epochs, sigma), study.seed)


HALVING_RULE = ("Successive halving, also fixed in advance: on every rung but the last the incumbent goes on, and so "
                "does the better half of the challengers by accuracy on these images (ties keep the listed order); the "
                "rest stop there. Stopping is by rank, not by a test: a stopped candidate was not shown to be worse, and "
                "the table gives its interval.")


def measurement(study: Study, sigma: float | None) -> str:
    """How selection runs are measured and which go on to the next rung (for the reports)."""
    n = len(study.decision_indices)
    if study.profile.selection.at_fixres and sigma:
        return (f"Each run is measured where the model will be used: on the same {n:,} `test` images at its FixRes "
                f"test resolution (k_train / r with σ = {sigma:.3f}), after re-estimating its batch-norm statistics "
                f"there on {study.profile.fixres.bn_recal_n:,} training images (no gradient step). {HALVING_RULE}")
    return f"Each run is measured on the same {n:,} `test` images at its training resolution. {HALVING_RULE}"
