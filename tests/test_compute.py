"""Accuracy against compute: training FLOPs, the frontier, and the answer paragraph's numbers."""
import re

import pytest

from effnb.study.compute import ComputePoint, _point, answer_paragraph, chosen_row, final_rows, frontier, training_flops


def test_training_flops_weights_each_epoch_by_its_size():
    result = {"flops": 1_000, "n_train": 10, "k_train": 64, "history": [{"size": 32}, {"size": 64}]}
    assert training_flops(result) == pytest.approx(3 * 1_000 * 10 * (0.25 + 1))
    assert training_flops({**result, "history": []}) == 1_000 * 10  # BN recalibration: forward passes only


def test_the_frontier_keeps_what_no_cheaper_model_beats():
    pts = [_point(name, "final", "test2", acc, 100, minutes * 60, 0.0)
           for name, acc, minutes in [("a", .6, 1), ("b", .55, 2), ("c", .7, 3), ("d", .7, 4)]]
    assert [p.model for p in frontier(pts)] == ["a", "c"]


def test_the_answer_quotes_the_final_output_exactly():
    final = {"chosen_step": "bn_recal", "rows": [
        {"id": "trained", "label": "trained", "accuracy": 0.9, "n": 4000, "k_test": 79},
        {"id": "bn_recal", "label": "BN recalibrated", "accuracy": 0.9123, "n": 4000, "extra_seconds": 12.0}]}
    points = [_point("baseline C", "baseline", "test", .8, 1000, 600.0, 1e12),
              _point("trained", "final", "test2", .9, 4000, 3000.0, 1e13),
              _point("BN recalibrated", "final", "test2", .9123, 4000, 3012.0, 1e13, chosen=True)]
    text = answer_paragraph(final, points, "a 2-core CPU")
    assert "**50 CPU-minutes**" in text and "**91.23 %**" in text and "(4,000 images)" in text
    assert "+1.23 points" in text and "12 s more CPU" in text and "10 CPU-minutes more" in text
    low, high = re.search(r"\[(\d+\.\d), (\d+\.\d)\]", text).groups()
    assert float(low) < 91.23 < float(high)
    assert "94.66 %" in text and "optimistic" in text
    assert isinstance(points[0], ComputePoint)


def test_the_answer_names_flip_tta_where_it_is_the_chosen_model():
    final = {"chosen_step": "bn_recal", "chosen_tta": True, "rows": [
        {"id": "trained", "label": "trained", "accuracy": 0.9, "n": 4000, "k_test": 79},
        {"id": "bn_recal", "label": "BN recalibrated", "accuracy": 0.9123, "n": 4000, "extra_seconds": 12.0}],
        "tta": {"id": "tta", "label": "BN recalibrated + horizontal-flip TTA", "accuracy": 0.92, "n": 4000,
                "extra_seconds": 12.0}}
    assert chosen_row(final) is final["tta"] and final_rows(final)[-1] is final["tta"]
    points = [_point("trained", "final", "test2", .9, 4000, 3000.0, 1e13),
              _point("BN recalibrated", "final", "test2", .9123, 4000, 3012.0, 1e13),
              _point("BN recalibrated + horizontal-flip TTA", "final", "test2", .92, 4000, 3012.0, 1e13, chosen=True)]
    text = answer_paragraph(final, points, "a 2-core CPU")
    assert "**92.00 %**" in text and "+1.23 points" in text and "flip TTA" in text and "+0.77 points more" in text
    assert chosen_row({**final, "chosen_tta": False}) is final["rows"][1] and len(final_rows({**final, "chosen_tta": False})) == 2
