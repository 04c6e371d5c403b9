"""Accuracy against training compute: one point per model the study trained, read from its notebook outputs,
and the answer to the study's question in one paragraph.

Compute is counted two ways. **CPU-minutes** are the measured wall time of training on this machine (a
FixRes step adds its own time to the model it starts from). **Training FLOPs** are ``3 x`` the forward FLOPs
per image (the backward pass costs about twice the forward) ``x`` the images seen, each epoch weighted by
``(its input size / k_train)²``; a step without an optimiser (BN recalibration) counts one forward pass.
Baselines and grid candidates are measured on the ``test`` decision images, the final model and its FixRes
steps on ``test2``, so the two groups are compared within themselves, not across.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from effnb import seed_study
from effnb.study.outputs import read_output
from effnb.study.stats import accuracy_interval


@dataclass(frozen=True)
class ComputePoint:
    """One trained model: its accuracy with the 95 % Wilson interval, and what its training cost."""

    model: str
    group: str  # "baseline", "grid", "final" (test2)
    split: str
    accuracy: float
    n: int
    low: float
    high: float
    cpu_minutes: float
    train_flops: float
    chosen: bool = False


def training_flops(result: dict) -> float:
    """The training FLOPs of one experiment's result (see the module docstring)."""
    history = result.get("history") or []
    if not history:  # forward passes only
        return float(result["flops"]) * result["n_train"]
    k = result["k_train"]
    return 3.0 * result["flops"] * result["n_train"] * sum((h["size"] / k) ** 2 for h in history)


def _point(model: str, group: str, split: str, accuracy: float, n: int, seconds: float, flops: float,
           chosen: bool = False) -> ComputePoint:
    low, high = accuracy_interval(accuracy, n)
    return ComputePoint(model, group, split, accuracy, n, low, high, seconds / 60, flops, chosen)


def _result_of(artifacts_dir: Path, checkpoint: str) -> dict:
    """The experiment result written beside a checkpoint (paths relative to the artifacts folder or absolute)."""
    return json.loads((Path(artifacts_dir) / Path(checkpoint).parent / "result.json").read_text())


def chosen_row(final: dict) -> dict:
    """The final notebook's row of the model the study chose: its flip-TTA row where notebook 05 chose flip TTA,
    else the chosen FixRes step's row (the last row in outputs that predate that choice)."""
    if final.get("chosen_tta"):
        return final["tta"]
    rows = final["rows"]
    return next(r for r in rows if r["id"] == final["chosen_step"]) if "chosen_step" in final else rows[-1]


def final_rows(final: dict) -> list[dict]:
    """The final notebook's rows that are points of the figure: every FixRes step, and the flip-TTA row where it is
    the chosen model (it trains nothing more than its step)."""
    return [*final["rows"], *([final["tta"]] if final.get("chosen_tta") else [])]


def compute_points(artifacts_dir: str | Path) -> list[ComputePoint]:
    """Every model the study trained, from the baselines, grid and final notebooks' outputs."""
    artifacts_dir, points = Path(artifacts_dir), []
    for name, group in (("baselines", "baseline"), ("grid", "grid")):
        output = read_output(artifacts_dir, name)
        for label, r in output["results"].items():
            points.append(_point(f"{group} {label}", group, "test", r["eval"]["accuracy"], r["eval"]["n"],
                                 r["train_seconds"], training_flops(r), label == output["selection"]["chosen"]))
    final = read_output(artifacts_dir, "final")
    trained, chosen = _result_of(artifacts_dir, final["rows"][0]["checkpoint"]), chosen_row(final)
    for row in final_rows(final):
        extra = _result_of(artifacts_dir, row["checkpoint"]) if row.get("extra_seconds") else None
        points.append(_point(row["label"], "final", "test2", row["accuracy"], row["n"],
                             trained["train_seconds"] + (row.get("extra_seconds") or 0.0),
                             training_flops(trained) + (training_flops(extra) if extra else 0.0),
                             row is chosen))
    return points


def frontier(points: list[ComputePoint]) -> list[ComputePoint]:
    """The points no cheaper point beats (in CPU-minutes), cheapest first: the accuracy a budget can buy."""
    best, out = -1.0, []
    for p in sorted(points, key=lambda p: (p.cpu_minutes, -p.accuracy)):
        if p.accuracy > best:
            best, out = p.accuracy, [*out, p]
    return out


def _minutes(m: float) -> str:
    return f"{m:.1f}" if m < 10 else f"{m:.0f}"


def answer_paragraph(final: dict, points: list[ComputePoint], machine: str) -> str:
    """The study's answer in one paragraph, every number from ``final`` (the final notebook's output) and
    ``points``."""
    rows = {r["id"]: r for r in final["rows"]}
    chosen = next(p for p in points if p.group == "final" and p.chosen)
    row, trained, tta = rows[final["chosen_step"]], rows["trained"], final.get("chosen_tta")
    selection = sum(p.cpu_minutes for p in points if p.group != "final")
    seed = seed_study.FINAL["with fine-tuning"]
    step = (f"its FixRes step (“{row['label']}”) adds {100 * (row['accuracy'] - trained['accuracy']):+.2f} points "
            f"over the model as trained at {trained['k_test']} px ({100 * trained['accuracy']:.2f} %) for "
            f"{row.get('extra_seconds') or 0:.0f} s more CPU" if row["id"] != "trained" else
            "no FixRes step beat the model as trained")
    if tta:
        step += (f", and averaging each image's logits with its mirror's (flip TTA, twice the evaluation cost) "
                 f"adds {100 * (final['tta']['accuracy'] - row['accuracy']):+.2f} points more")
    return (f"**{_minutes(chosen.cpu_minutes)} CPU-minutes** of training on {machine} buy **{100 * chosen.accuracy:.2f} %** "
            f"[{100 * chosen.low:.1f}, {100 * chosen.high:.1f}] on `test2` ({chosen.n:,} images) for the chosen "
            f"model; {step}. Choosing it, the baselines and the grid candidates trained for "
            f"{_minutes(selection)} CPU-minutes more. The seed reports {100 * seed.accuracy:.2f} % with "
            f"φ = {seed_study.FINAL_PHI.value} on a GPU and does not state its training budget; its author's "
            f"published code validates on the reported test set, so that figure may be optimistic.")
