"""The study's plan in its artifacts: made once before training (or copied from ``--plan``), reused on resume,
completed when notebook 04 fixes the final model's epochs (see :mod:`effnb.study.plan`)."""
from __future__ import annotations

import glob
import json
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

import psutil

from effnb.nn.model import BASELINES, NetSpec
from effnb.study.context import Study
from effnb.study.plan import (
    MARGIN,
    NOTEBOOK_SECONDS,
    STAGES,
    CostModel,
    Counts,
    PlanError,
    Timing,
    apply_plan,
    final_epochs,
    gflops,
    load_plan,
    make_plan,
    read_plan,
    time_steps,
    write_plan,
)
from effnb.train.time_limit import TimeLimit
from effnb.utils.device import cpu_name

# The final model may lengthen to this many times its planned epochs when it runs ahead of the slower estimate that
# fixed them (the study at 00fe44f on an AMD EPYC left 15 of its 71 minutes unused; the one at 58eb1fc, shortened
# from 230 epochs to 162, 19 of 91).
LONGER = 1.5


def counts_of(study: Study) -> Counts:
    """The image counts of ``study``'s splits under its profile."""
    return Counts.of(study.profile, len(study.splits["train"]), len(study.splits["test"]), len(study.split_indices("test2")))


def ensure_plan(study: Study, budget_minutes: float | None, given: str | Path | None = None,
                started: float | None = None) -> dict | None:
    """The plan of ``study``: the one saved in its artifacts (a resumed run), else the one in ``given``, else a
    new one for ``budget_minutes`` timed on this machine (``started``: when the study began, time.time(), so
    decoding counts). None when there is neither a budget nor a plan: the profile's fixed epochs apply."""
    saved = read_plan(study.artifacts_dir)
    if given is not None:
        plan = load_plan(given)
        if saved is not None and saved["selection"] != plan["selection"]:
            raise PlanError(f"{study.artifacts_dir} already holds another plan: use a fresh --artifacts-dir to repeat {given}")
        apply_plan(study.profile, plan)  # checks the profile
        return saved or _saved(study, {**plan, "repeated_from": str(given)})
    if saved is not None or budget_minutes is None:
        return saved
    begin = time.time() if started is None else started
    indices = study.splits["train"]
    timings = time_steps(study.cache, list(BASELINES.values()), study.recipe, indices, study.device)
    model = CostModel.fit(timings)
    plan = make_plan(study.profile, study.recipe, model, counts_of(study), budget_minutes, time.time() - begin)
    plan.update(machine=cpu_name(), device=str(study.device), timings=[t.__dict__ for t in timings],
                planning_seconds=time.time() - begin)
    return _saved(study, plan)


def _saved(study: Study, plan: dict) -> dict:
    write_plan(study.artifacts_dir, plan)
    study.profile = apply_plan(study.profile, plan)
    return plan


def elapsed_seconds(artifacts_dir: Path, plan: dict, before: str) -> float:
    """The study's time before notebook ``before`` and in it so far: planning, the earlier notebooks' recorded
    wall times (papermill's), and this kernel's age."""
    total = plan.get("planning_seconds", 0.0)
    for stem in STAGES[:STAGES.index(before)]:
        executed = artifacts_dir / "executed" / f"{stem}.ipynb"
        if executed.is_file():
            total += json.loads(executed.read_text())["metadata"].get("papermill", {}).get("duration") or 0.0
    return total + time.time() - psutil.Process().create_time()


def trained_speeds(artifacts_dir: Path, spec: NetSpec) -> list[Timing]:
    """Every real epoch this artifacts folder has trained ``spec``'s network for (the selection's runs of the same
    network), as timings: whole epochs on this machine, the data pipeline and the changes of input size included."""
    pattern = re.compile(re.escape(spec.name) + r"-[0-9a-f]{12}")
    timings = []
    for result in sorted((Path(artifacts_dir) / "experiments").glob(f"{glob.escape(spec.name)}-*/result.json")):
        if pattern.fullmatch(result.parent.name):
            for row in json.loads(result.read_text()).get("history", []):
                g = gflops(spec, row["size"])
                timings.append(Timing(spec.name, row["size"], g, row["img_per_s"], row["img_per_s"]))
    return timings


def fix_final_epochs(study: Study, spec: NetSpec) -> int:
    """The final model's equivalent epochs: the profile's without a plan; with one, fixed once (here, in 04) from
    the minutes left, and reused by every later run.

    Two estimates of this network's speed, each a line of seconds per image against GFLOPs: its step timed now at
    the first and last input sizes (twice, the faster kept), and the whole epochs the selection trained it for.
    Both count each epoch's validation pass and the closing evaluation at the timed evaluation speed. The slower
    one sets the epochs (a short timing has been measured 1.6 times as fast as the epochs that followed it,
    ``reports/speed.md``, and a budget is a promise) and is saved with them: :func:`final_time_limit` holds the
    run to it."""
    plan = read_plan(study.artifacts_dir)
    if plan is None:
        return study.profile.final.epochs
    if plan["final"]["epochs"] is None:
        runs = [time_steps(study.cache, [spec], study.recipe, study.splits["train"], study.device) for _ in range(2)]
        timed = [max(same_size, key=lambda t: t.train_img_s) for same_size in zip(*runs)]
        trained = trained_speeds(study.artifacts_dir, spec)
        elapsed = elapsed_seconds(study.artifacts_dir, plan, "04_scaling")
        left = (plan["budget_minutes"] * 60 * (1 - MARGIN) - elapsed - plan["reserve_minutes"] * 60
                - NOTEBOOK_SECONDS * 2)
        counts = counts_of(study)
        models = {"timed": CostModel.fit(timed)}
        if trained:  # the selection's epochs give training speed only: evaluation as timed
            models["trained"] = replace(CostModel.fit(trained), eval_a=models["timed"].eval_a,
                                        eval_b=models["timed"].eval_b)
        by = {k: final_epochs(m, study.recipe, spec, counts.train, left, counts.decision) for k, m in models.items()}
        slower = min(by, key=by.get)
        plan["final"] |= {"epochs": by[slower], "network": spec.name, "epochs_by_estimate": by,
                          "timed": [t.__dict__ for t in timed], "trained": [t.__dict__ for t in trained],
                          "seconds_left": left, "elapsed_seconds": elapsed, "cost_model": asdict(models[slower]),
                          "n_train": counts.train, "n_eval": counts.decision}
        write_plan(study.artifacts_dir, plan)
    study.profile = apply_plan(study.profile, plan)
    return plan["final"]["epochs"]


def final_time_limit(study: Study, spec: NetSpec) -> TimeLimit | None:
    """The final model's training limit, from the plan :func:`fix_final_epochs` completed: the seconds left for it
    less its closing evaluation, and the estimate that fixed its epochs (each epoch's validation pass included);
    each decision may shorten the run or lengthen it, up to :data:`LONGER` times its epochs.
    None without a plan, or with one completed before effnb saved that estimate."""
    plan = read_plan(study.artifacts_dir)
    final = plan["final"] if plan else {}
    if "cost_model" not in final:
        return None
    if final["network"] != spec.name:
        raise PlanError(f"the plan's final epochs were fixed for {final['network']}, not {spec.name}: "
                        f"use a fresh --artifacts-dir")
    model, g, k = CostModel(**final["cost_model"]), gflops(spec), spec.resolution
    validation = model.eval_seconds(g, final["n_eval"])

    def epoch_seconds(size: int) -> float:
        return model.train_seconds(g * (size / k) ** 2, final["n_train"]) + validation

    return TimeLimit(max(final["seconds_left"] - validation, 1.0), epoch_seconds, longer=LONGER)
