"""The predictions analysis (which images which models get wrong) on synthetic predictions and a tiny model."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from effnb.data.cache import ImageCache
from effnb.report.plots import plot_hardest_images, plot_prediction_grid
from effnb.study.analysis import (
    SplitPredictions,
    describe_hardest,
    image_statistics,
    predict_models,
)
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import Feed
from effnb.train.inference import evaluate

matplotlib.use("Agg")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def synthetic(n_images: int = 20, hard: int = 6, seed: int = 0) -> SplitPredictions:
    """3 models; the first ``hard`` images are wrong for every model, image ``hard`` for two, the rest right."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images) % 2
    probs = {}
    for m, name in enumerate(["a", "b", "c"]):
        p_true = rng.uniform(0.6, 0.99, n_images)
        p_true[:hard] = rng.uniform(0.05, 0.2, hard)
        if m < 2:
            p_true[hard] = 0.3
        p = np.empty((n_images, 2))
        p[np.arange(n_images), labels] = p_true
        p[np.arange(n_images), 1 - labels] = 1 - p_true
        probs[name] = p
    return SplitPredictions(np.arange(100, 100 + n_images), labels, ["Cat", "Dog"], probs)


def test_grid_counts_and_order():
    preds = synthetic()
    correct = preds.correct()
    assert correct.shape == (3, 20) and list(correct.index) == ["a", "b", "c"]
    assert preds.summary() == {"models": ["a", "b", "c"], "images": 20, "all_wrong": 6, "any_wrong": 7,
                               "errors": {"a": 7, "b": 7, "c": 6}}
    difficulty = preds.difficulty()
    assert list(difficulty["models wrong"]) == [3] * 6 + [2] + [0] * 13
    assert difficulty["mean p(true class)"].iloc[:6].is_monotonic_increasing  # ties broken by confidence
    hardest = preds.hardest(7)
    assert list(hardest.columns) == ["index", "true class", "models wrong", "mean p(true class)", "a", "b", "c"]
    assert set(hardest["index"]) == set(range(100, 107)) and (hardest[["a", "b", "c"]].iloc[:6] < 0.5).all().all()


def test_predictions_of_the_same_images_combine():
    a, b = synthetic(seed=0), synthetic(seed=1)
    b.probs = {f"{k}2": v for k, v in b.probs.items()}
    both = a | b
    assert both.models == ["a", "b", "c", "a2", "b2", "c2"] and both.summary()["images"] == 20
    assert both.renamed({"a": "model A"}).models == ["model A", "b", "c", "a2", "b2", "c2"]
    other = SplitPredictions(np.arange(5), np.zeros(5, dtype=int), ["Cat", "Dog"])
    with pytest.raises(ValueError, match="different images"):
        a | other


def test_description_is_written_from_the_numbers():
    preds = synthetic()
    stats = pd.DataFrame({"brightness": np.r_[np.full(6, 40.0), np.full(14, 150.0)] + np.arange(20),
                          "colourfulness": np.full(20, 60.0) + np.arange(20) % 2,
                          "contrast": np.full(20, 50.0) + 2 * (np.arange(20) % 2),
                          "green share": np.r_[np.full(6, 30.0), np.full(14, 10.0)] + np.arange(20) % 3},
                         index=preds.indices)
    text = describe_hardest(preds, stats)
    assert "6 of the 20 test2 images (30.0 %) are misclassified by every model and 7 (35.0 %)" in text
    assert "from 6 (c) to 7 (a)" in text
    assert "Of the 6 images every model gets wrong, 3 are Cat (50 %, against 50 % among all 20)" in text
    assert "on average 1.9 of the other 2 models also get an image wrong" in text and "about 0.7 if" in text
    assert "confidently wrong" in text and "darker (mean brightness 42 against 162 of 255)" in text
    assert "greener (31 % against 11 % green pixels)" in text
    assert "colourful" not in text and "contrast" not in text  # no difference in those: not mentioned

    few = synthetic(hard=2)  # fewer than 5 images every model gets wrong: those most models get wrong instead
    assert "images most models get wrong" in describe_hardest(few, stats)


def test_image_statistics():
    canvas = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    canvas[0, 1, :, :4] = 200  # image 0: left half green, right half black
    canvas[1, 0, :4, :6] = 255  # image 1: pure red, 4 x 6, in the top-left corner of its canvas
    cache = ImageCache(canvas, np.array([[8, 8], [4, 6]]), np.zeros(2, dtype=int), ["Cat", "Dog"], ["a", "b"], [], 8)
    stats = image_statistics(cache, np.array([0, 1]))
    assert list(stats.columns) == ["brightness", "colourfulness", "contrast", "green share"]
    assert stats.loc[0].tolist() == pytest.approx([0.587 * 100, 100, 0.587 * 100, 50], abs=1e-3)
    assert stats.loc[1].tolist() == pytest.approx([0.299 * 255, 255, 0, 0], abs=1e-3)


def test_predict_models_reads_each_model_once_and_scores_like_evaluate(checkpoint, small_cache):
    indices = np.arange(0, len(small_cache), 3)
    preds = predict_models({"own": (str(checkpoint), None), "larger": (str(checkpoint), {"k_test": 48})},
                           small_cache, indices)
    assert preds.models == ["own", "larger"] and preds.probs["own"].shape == (len(indices), 2)
    assert [(r["k_test"], r["k_image_test"]) for r in preds.rows] == [(40, 45), (48, 54)]
    model, _ = load_checkpoint(checkpoint)
    expected = evaluate(model, Feed(small_cache, indices, 40, "eval", 45), progress=False)
    assert preds.rows[0]["accuracy"] == pytest.approx(expected["accuracy"])
    assert preds.rows[0]["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    np.testing.assert_array_equal(preds.labels, small_cache.labels[indices])


def test_grid_plot_shows_mistakes_in_black_hardest_first():
    preds = synthetic()
    fig = plot_prediction_grid(preds.correct())
    in_order, by_difficulty = fig.axes
    assert [t.get_text() for t in by_difficulty.get_yticklabels()] == ["a", "b", "c"]
    sorted_grid = by_difficulty.get_images()[0].get_array()
    assert (sorted_grid[:, :6] == 0).all() and sorted_grid[:, 7:].all()  # 0 = black = mistake
    np.testing.assert_array_equal(in_order.get_images()[0].get_array(), preds.correct().to_numpy(dtype=float))


def test_hardest_images_plot_has_one_image_per_column_and_a_probability_row_per_model():
    preds = synthetic()
    hardest = preds.hardest(4)
    fig = plot_hardest_images(torch.zeros(4, 3, 16, 16), hardest, preds.models)
    assert len(fig.axes) == 5 and [ax.get_title() for ax in fig.axes[:4]] == [f"true: {c}" for c in hardest["true class"]]
    heat = fig.axes[4].collections[0].get_array().reshape(3, 4)
    np.testing.assert_allclose(heat, hardest[["a", "b", "c"]].T.to_numpy())


def test_the_seed_comparison_puts_the_chosen_model_beside_the_seed_and_says_what_differs():
    from effnb.study.analysis import beside_the_seed
    from effnb.train.recipes import get_recipe

    trained = {"label": "trained", "accuracy": 0.88, "n": 4000, "loss": 0.31}
    chosen = {"label": "BN statistics recalibrated", "accuracy": 0.906, "n": 4000, "loss": 0.27, "extra_seconds": 18.0}
    full = {"label": "whole network fine-tuned", "accuracy": 0.909, "n": 4000, "loss": 0.26, "extra_seconds": 300.0}
    table, differs = beside_the_seed(trained, chosen, full, get_recipe("budget"), 1, 95.0, "a 2-core CPU")
    assert list(table["this run's model"]) == ["trained", "BN statistics recalibrated"]  # not the full fine-tune
    assert table.iloc[1]["accuracy [95 % CI]"].startswith("90.60 % [")
    text = " ".join(differs)
    assert "label smoothing 0.1" in text and "0.051" in text  # -ln(0.95): the loss floor under smoothing
    assert "90.90 %" in text and "95.0 CPU-minutes" in text and "`test2` of 4,000" in text and "may be optimistic" in text
    _, plain = beside_the_seed(trained, chosen, full, get_recipe("published"), 1, 95.0, "a 2-core CPU")
    assert "losses can be compared" in " ".join(plain)
