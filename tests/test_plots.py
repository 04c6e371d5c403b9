"""Figures a reader can read: integer epochs, accuracies in %, plain FLOPs labels, no one-cell size plot."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from effnb.report.plots import (
    plot_learning_curves,
    plot_resolution_sweep,
    plot_selection,
    plot_sizes,
    size_summary,
)

matplotlib.use("Agg")


def result(name: str, accuracies: list[float]) -> dict:
    return {"name": name, "n_eval": 400, "history": [{"epoch": e, "train_loss": 0.7 - 0.1 * e, "val_acc": a}
                                      for e, a in enumerate(accuracies, 1)]}


def test_learning_curves_use_whole_epochs_and_percent():
    fig = plot_learning_curves([result("A", [0.61, 0.64, 0.655]), result("B", [0.6, 0.62, 0.63])])
    loss_ax, acc_ax = fig.axes[:2]
    shown = [t for t in loss_ax.get_xticks() if loss_ax.get_xlim()[0] <= t <= loss_ax.get_xlim()[1]]
    assert shown and all(float(t).is_integer() for t in shown)
    assert acc_ax.get_ylabel() == "held-out accuracy (%)" and 45 <= acc_ax.get_ylim()[0] < acc_ax.get_ylim()[1] <= 75
    assert acc_ax.get_legend() is not None and loss_ax.get_legend() is None  # one legend, beside the axes
    assert len(acc_ax.collections) == 2 and not loss_ax.collections  # each accuracy curve with its interval band
    matplotlib.pyplot.close(fig)


def sweep(accuracies: list[float], n: int = 400) -> list[dict]:
    return [{"k_test": k, "accuracy": a, "loss": 0.5, "n": n} for k, a in zip((64, 80, 96), accuracies)]


def test_resolution_sweeps_carry_intervals_and_compare_only_the_same_images():
    fig = plot_resolution_sweep({"a": sweep([0.6, 0.65, 0.62]), "b": sweep([0.61, 0.66, 0.64])}, 64, 80)
    acc_ax = fig.axes[0]
    assert len(acc_ax.collections) == 2 and "interval" in acc_ax.get_ylabel()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="different numbers of images"):
        plot_resolution_sweep({"a": sweep([0.6, 0.65, 0.62], 600), "b": sweep([0.61, 0.66, 0.64], 4000)}, 64, 80)


def test_selection_figure_hollows_stopped_candidates_and_names_each_once():
    table = pd.DataFrame([
        {"rung": 1, "eq. epochs": 1.0, "candidate": c, "params": p, "MFLOPs (2/MAC)": f, "acc %": a, "low %": a - 2,
         "high %": a + 2, "next": nxt}
        for c, p, f, a, nxt in (("A", 50_000, 20.0, 60.0, "stopped"), ("B", 48_000, 19.0, 62.0, "promoted"),
                                ("C", 40_000, 18.0, 61.0, "promoted"))] + [
        {"rung": 2, "eq. epochs": 3.0, "candidate": c, "params": p, "MFLOPs (2/MAC)": f, "acc %": a, "low %": a - 2,
         "high %": a + 2, "next": "decided by the rule"}
        for c, p, f, a in (("B", 48_000, 19.0, 66.0), ("C", 40_000, 18.0, 67.0))])
    fig = plot_selection(table)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["A", "B", "C"]  # one label per candidate
    assert sum(len(c[0].get_xdata()) for c in ax.containers) == 5  # every run with its error bar
    assert any(c[0].get_markerfacecolor() == "white" for c in ax.containers)  # the stopped one hollow
    matplotlib.pyplot.close(fig)


def test_one_image_size_is_said_not_plotted():
    same = np.array([[200, 200]] * 5)
    assert plot_sizes(same) is None
    assert size_summary(same) == "All 5 cached images are 200×200 pixels (height × width), so no size plot is needed."
    mixed = np.array([[200, 150], [150, 200], [200, 200]])
    fig = plot_sizes(mixed)
    assert fig is not None and "3 sizes" in size_summary(mixed)
    matplotlib.pyplot.close(fig)
