"""The accuracy-against-compute answer as committed files: the points (``reports/models/compute.json``, beside
``final.json``) and their figure (``reports/accuracy-vs-compute.png``), so the README's answer block is regenerated
from what is committed, not from ``artifacts/``."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt

from effnb.report.plots import plot_accuracy_vs_compute
from effnb.study.compute import ComputePoint, compute_points
from effnb.study.outputs import OutputMissing
from effnb.utils.atomic import temp_path, write_json

POINTS = Path("models") / "compute.json"  # relative to the reports folder
FIGURE = Path("accuracy-vs-compute.png")


def publish_compute(artifacts_dir: str | Path, reports_dir: str | Path) -> Path | None:
    """Write every trained model's accuracy and training cost to ``reports/models/compute.json`` and their figure to
    ``reports/accuracy-vs-compute.png``; return the JSON's path.

    Before the final notebook has run, or from outputs of an older effnb that lack a field, nothing is published
    and an earlier run's two files are removed, so they never sit beside another run's ``final.json``.
    """
    reports_dir = Path(reports_dir)
    points_path, figure_path = reports_dir / POINTS, reports_dir / FIGURE
    try:
        points = compute_points(artifacts_dir)
    except (OutputMissing, FileNotFoundError, KeyError):
        points = []
    if not points:
        points_path.unlink(missing_ok=True)
        figure_path.unlink(missing_ok=True)
        return None
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    fig, tmp = plot_accuracy_vs_compute(points), temp_path(figure_path)
    try:
        fig.savefig(tmp, format="png", dpi=90)
        os.replace(tmp, figure_path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    write_json(points_path, {"points": [asdict(p) for p in points]})
    return points_path


def read_compute(reports_dir: str | Path) -> list[ComputePoint] | None:
    """The published points, or None where ``reports/models/compute.json`` is not there."""
    path = Path(reports_dir) / POINTS
    if not path.is_file():
        return None
    return [ComputePoint(**p) for p in json.loads(path.read_text())["points"]]
