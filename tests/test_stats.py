"""Intervals, paired tests and the decision rule, on cases small enough to count by hand."""
from __future__ import annotations

import numpy as np
import pytest

from effnb.study.stats import (
    CostOrderedRule,
    DecisionRule,
    accuracy_interval,
    compare_paired,
    format_accuracy,
    format_p,
    holm_adjust,
    mcnemar_exact,
    paired_bootstrap_interval,
)
from effnb.utils.correct import pack_correct, unpack_correct


@pytest.mark.parametrize("correct,n,low,high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17, Table I, method 3
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_interval_matches_the_published_worked_examples(correct, n, low, high):
    assert accuracy_interval(correct / n, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="accuracy in"):
        accuracy_interval(1.25, 4)
    assert format_accuracy(0.63, 2000) == "63.00 % (95 % interval 60.9–65.1 %)"


def test_exact_mcnemar_on_hand_countable_cases():
    # 1 vs 9 discordant pairs: 2 * P(X <= 1 | n = 10, 1/2) = 2 * (1 + 10) / 2**10
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)


def test_compare_paired_counts_the_discordant_images():
    a = [1, 1, 1, 0, 0, 1]
    b = [1, 0, 0, 1, 0, 1]
    c = compare_paired("a", a, "b", b)
    assert (c.only_challenger, c.only_incumbent, c.n) == (2, 1, 6)
    assert c.difference == pytest.approx(1 / 6)
    assert c.p_value == 1.0  # 2 of 3 discordant pairs is no evidence
    assert not c.beats_incumbent()


def test_compare_paired_needs_the_same_images():
    with pytest.raises(ValueError, match="same non-empty test images"):
        compare_paired("a", [1, 0, 1], "b", [1, 0])


def test_paired_bootstrap_interval_has_the_normal_width_on_many_images():
    rng = np.random.default_rng(1)
    a, b = rng.random(4000) < 0.80, rng.random(4000) < 0.78
    low, high = paired_bootstrap_interval(a, b)
    d = a.astype(float) - b
    assert low < d.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * d.std() / np.sqrt(d.size), rel=0.1)


def test_paired_bootstrap_of_identical_predictions_is_zero():
    a = np.arange(100) % 3 == 0
    assert paired_bootstrap_interval(a, a) == (0.0, 0.0)


def test_holm_adjustment_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    # two of five declared hypotheses tested: the three untested count at p = 1, so 5 * 0.01 and max(0.05, 4 * 0.04)
    assert holm_adjust([0.01, 0.04], family=5) == pytest.approx([0.05, 0.16])
    assert holm_adjust([0.01, 0.04], family=2) == holm_adjust([0.01, 0.04])


def test_pack_and_unpack_per_image_results():
    c = np.array([True, False, False, True])
    assert pack_correct(c) == "1001"
    assert (unpack_correct("1001") == c).all()
    with pytest.raises(ValueError, match="0 and 1"):
        unpack_correct("10x1")


def _with_accuracy(n: int, right: int, shift: int = 0) -> np.ndarray:
    c = np.zeros(n, dtype=bool)
    c[(np.arange(right) + shift) % n] = True
    return c


RULE = DecisionRule("which baseline", "C", "the seed's choice")


def test_the_incumbent_stands_when_the_lead_is_within_the_noise():
    n = 2000
    results = {"A": _with_accuracy(n, 1620, shift=500), "C": _with_accuracy(n, 1600)}  # +1 point
    decision = RULE.decide(results)
    assert decision.chosen == "C" and not decision.switched
    assert decision.sentence.startswith("No challenger beats C beyond the noise")
    assert "the seed's choice, stands" in decision.sentence


def test_a_challenger_far_ahead_overturns_the_incumbent():
    n = 2000
    results = {"C": _with_accuracy(n, 1500), "A": _with_accuracy(n, 1700), "B": _with_accuracy(n, 1650)}
    decision = RULE.decide(results)
    assert decision.chosen == "A" and decision.switched  # both beat C; A is the more accurate
    assert decision.sentence.startswith("A beats C beyond the noise")
    assert all(c.adjusted_p is not None and c.adjusted_p >= c.p_value for c in decision.comparisons)
    assert set(decision.table().index) == {"A", "B"}
    assert decision.as_dict()["chosen"] == "A"


def test_holm_can_keep_an_incumbent_that_one_unadjusted_test_would_drop():
    n = 4000
    inc = _with_accuracy(n, 3200)
    lucky = inc.copy()
    lucky[np.flatnonzero(~inc)[:70]] = True  # 70 vs 0 discordant images: p tiny, survives any correction
    borderline = inc.copy()
    borderline[np.flatnonzero(~inc)[:25]] = True
    borderline[np.flatnonzero(inc)[:11]] = False  # 25 vs 11: p ~ 0.03 alone
    others = {f"x{i}": inc.copy() for i in range(3)}
    alone = DecisionRule("q", "inc", "the default", holm=False).decide({"inc": inc, "b": borderline})
    held = DecisionRule("q", "inc", "the default").decide({"inc": inc, "b": borderline, **others})
    assert alone.chosen == "b" and held.chosen == "inc"
    assert RULE.decide({"C": inc, "lucky": lucky, "b": borderline}).chosen == "lucky"


def test_the_rule_is_stated_before_results_and_needs_the_incumbent():
    assert "C (the seed's choice) stands unless" in RULE.statement() and "0.05" in RULE.statement()
    with pytest.raises(ValueError, match="incumbent 'C' has no results"):
        RULE.decide({"A": [1, 0]})


def test_cost_ordered_rule_climbs_only_when_the_costlier_step_pays():
    n = 4000
    cheap = _with_accuracy(n, 3200)
    better = cheap.copy()
    better[np.flatnonzero(~cheap)[:120]] = True  # +3 points, never worse on any image
    same = better.copy()
    same[np.flatnonzero(~better)[:10]] = True
    same[np.flatnonzero(better)[:10]] = False  # the same accuracy on different images
    rule = CostOrderedRule("which FixRes step", ("none", "bn", "full"))
    decision = rule.decide({"none": cheap, "bn": better, "full": same})
    assert decision.chosen == "bn" and decision.switched
    assert "stops at the first" in rule.statement()
    assert [(c.challenger, c.incumbent) for c in decision.comparisons] == [("bn", "none"), ("full", "bn")]
    assert "full does not beat bn beyond the noise" in decision.sentence
    assert "none, the cheapest, stands" in rule.statement()
    assert list(decision.table()["against"]) == ["none", "bn"]
    with pytest.raises(ValueError, match="no results"):
        rule.decide({"none": cheap})
    # a fixed sequence: once a step fails, a costlier one is not tested, however good it looks
    walk = CostOrderedRule("which FixRes step", ("none", "bn", "full")).decide({"none": better, "bn": cheap,
                                                                                 "full": better | same})
    assert walk.chosen == "none" and [c.challenger for c in walk.comparisons] == ["bn"]
    assert "full not tested" in walk.sentence


def test_decision_tables_speak_to_a_reader():
    n = 4000
    inc = _with_accuracy(n, 3200)
    far = inc.copy()
    far[np.flatnonzero(~inc)[:200]] = True
    table = DecisionRule("q", "inc", "the default").decide({"inc": inc, "far": far, "same": inc.copy()}).table()
    assert list(table.index) == ["far", "same"]  # the candidate names the row, no 0/1/2 index
    cells = {str(v) for v in table.to_numpy().ravel()}
    assert not cells & {"None", "True", "False", "nan"} and "< 0.0001" in cells
    assert table.loc["far", "beats it"] == "yes" and table.loc["same", "beats it"] == "no"
    assert table.loc["far", "accuracy"] == "85.00 %"
    plain = DecisionRule("q", "inc", "the default", holm=False).decide({"inc": inc, "far": far}).table()
    assert plain.loc["far", "Holm p"] == "not applied"
    assert [format_p(p) for p in (3e-7, 0.04234, 0.5, 1.0)] == ["< 0.0001", "0.042", "0.5", "1"]


def test_a_rule_applied_to_recorded_comparisons_decides_as_on_the_images():
    n = 4000
    inc = _with_accuracy(n, 3200)
    borderline = inc.copy()
    borderline[np.flatnonzero(~inc)[:25]] = True
    borderline[np.flatnonzero(inc)[:11]] = False
    rule = DecisionRule("q", "inc", "the default")
    on_images = rule.decide({"inc": inc, "b": borderline, "x": inc.copy()})
    recorded = [compare_paired(c, v, "inc", inc) for c, v in (("b", borderline), ("x", inc.copy()))]
    again = rule.decide_comparisons(recorded)
    assert again.chosen == on_images.chosen == "inc" and again.sentence == on_images.sentence
    assert [c.adjusted_p for c in again.comparisons] == [c.adjusted_p for c in on_images.comparisons]
    with pytest.raises(ValueError, match="comparisons against 'other'"):
        DecisionRule("q", "other", "x").decide_comparisons(recorded)
