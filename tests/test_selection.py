"""Successive halving: who trains how long, who is promoted, and where the decision is taken."""
from __future__ import annotations

import numpy as np
import pytest

from effnb.study.selection import halvings, rung_budgets, successive_halving
from effnb.study.stats import DecisionRule
from effnb.utils.correct import pack_correct

N = 2000


def fixed_measure(accuracy_by_rung: dict[str, list[float]], calls: list):
    """A stand-in for training: candidate ``name`` reaches ``accuracy_by_rung[name][i]`` on its i-th run."""
    def measure(name, candidate, epochs):
        i = sum(1 for n, _ in calls if n == name)
        calls.append((name, epochs))
        right = np.zeros(N, dtype=bool)
        order = np.random.default_rng(sum(map(ord, name))).permutation(N)  # different images per candidate
        right[order[:round(accuracy_by_rung[name][i] * N)]] = True
        return {"name": name, "params": 1, "flops": 1, "train_seconds": epochs,
                "eval": {"accuracy": right.mean(), "n": N, "k_test": 64, "correct": pack_correct(right)}}
    return measure


@pytest.mark.parametrize("n,expected", [(1, 0), (2, 1), (3, 1), (5, 2), (6, 2), (8, 3)])
def test_halvings_round_down(n, expected):
    assert halvings(n) == expected


def test_every_selection_ends_on_the_same_budget():
    assert rung_budgets((1, 2, 6), 2) == [2, 6]  # baselines: A, B against C
    assert rung_budgets((1, 2, 6), 5) == [1, 2, 6]  # the grid: five challengers of experiment 1
    assert rung_budgets((6,), 5) == [6]
    with pytest.raises(ValueError, match="at least one rung"):
        rung_budgets((), 2)


def test_the_better_half_and_the_incumbent_go_on():
    calls = []
    acc = {"e1": [0.60, 0.70, 0.80], "e2": [0.65, 0.72, 0.81], "e3": [0.50], "e4": [0.62, 0.69], "e5": [0.55],
           "e6": [0.61]}
    rule = DecisionRule("which grid point", "e1", "the seed's choice")
    selection = successive_halving({k: k for k in acc}, rule, (1, 2, 6), fixed_measure(acc, calls))
    assert [r.epochs for r in selection.rungs] == [1, 2, 6]
    assert selection.rungs[0].promoted == ("e1", "e2", "e4")  # the incumbent and the best 2 of 5 challengers
    assert selection.rungs[1].promoted == ("e1", "e2")
    assert selection.rungs[2].promoted == ()
    assert sorted(calls) == sorted([(k, 1) for k in acc] + [("e1", 2), ("e2", 2), ("e4", 2), ("e1", 6), ("e2", 6)])
    # decided on the last rung only: +1 point on 2,000 images is within the noise
    assert selection.chosen == "e1" and not selection.decision.switched
    assert selection.final("e2")["eval"]["accuracy"] == pytest.approx(0.81)
    latest = selection.latest()
    assert latest["e3"]["train_seconds"] == 1 and latest["e4"]["train_seconds"] == 2 and latest["e1"]["train_seconds"] == 6
    table = selection.table()
    assert len(table) == 6 + 3 + 2
    assert set(table.loc[table["rung"] == 1, "next"]) == {"promoted", "stopped"}
    assert selection.as_dict()["rungs"][-1]["epochs"] == 6


def test_a_challenger_far_ahead_on_the_last_rung_is_chosen():
    acc = {"C": [0.60, 0.75], "A": [0.55, 0.70], "B": [0.62, 0.82]}
    selection = successive_halving({k: k for k in acc}, DecisionRule("which baseline", "C", "the seed's choice"),
                                   (1, 2, 6), fixed_measure({k: v for k, v in acc.items()}, []))
    assert [r.epochs for r in selection.rungs] == [2, 6]
    assert selection.rungs[0].promoted == ("C", "B")
    assert selection.chosen == "B" and selection.decision.switched


def test_the_incumbent_must_be_a_candidate():
    with pytest.raises(ValueError, match="not among the candidates"):
        successive_halving({"A": 1}, DecisionRule("q", "C", "the seed's choice"), (1,), fixed_measure({}, []))
