"""Run the study: execute the notebooks in order with papermill, then render their reports and the index.

Each notebook runs in its own papermill process into ``artifacts_dir/executed``; its HTML report is rendered
by :mod:`effnb.report.html`, and the index and published models are written by :mod:`effnb.report.index`.
SIGTERM or SIGINT to the study ends the running papermill process and its kernel before the study exits
(see :func:`effnb.report.processes.run_child`), so no notebook writes into the artifacts after the study lock is
released.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat

from effnb.data.download import resolve_data_dir
from effnb.report.html import format_minutes, papermill_times, render_html
from effnb.report.index import publish_final, write_index
from effnb.report.processes import run_child
from effnb.study.outputs import NOTEBOOKS
from effnb.study.profiles import get_profile
from effnb.utils.atomic import ensure_dir, locked
from effnb.utils.device import pick_device
from effnb.utils.progress import BATCH_ENV

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
STUDY_LOCK = ".study.lock"
# jsonschema checks the "iri" string format with rfc3987_syntax where that is installed (jupyter-events pulls it
# in), and importing it compiles 38 lark grammars: about 2.5 s of every process that imports nbformat, on a 2-core
# CPU. nbformat's schemas check no string format, so the processes the study starts go without it.
WITHOUT_IRI_CHECKER = "import sys; sys.modules.setdefault('rfc3987_syntax', None)"
# `python -c PAPERMILL`, then papermill's arguments
PAPERMILL = f"{WITHOUT_IRI_CHECKER}; from papermill.cli import papermill; papermill(prog_name='papermill')"


class NotebookFailed(RuntimeError):
    """A notebook of the study raised; the earlier reports and artifacts are kept."""


def failed_cell_error(executed: Path) -> str:
    """The error of the first failing cell of an executed notebook, as one line."""
    if executed.is_file():
        for cell in nbformat.read(executed, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    return f"cell {cell.get('execution_count')}: {out['ename']}: {out['evalue']}"
    return "the kernel did not start or the notebook could not be read"


def run_study(profile: str, data_dir: str | Path | None, artifacts_dir: str | Path = "artifacts",
              reports_dir: str | Path = "reports", seed: int = 0, notebooks_dir: str | Path = NOTEBOOKS_DIR,
              only: list[str] | None = None, budget_minutes: float | None = None,
              plan: str | Path | None = None) -> list[Path]:
    """Execute the six notebooks in order into ``artifacts_dir/executed`` and render them into ``reports_dir``.

    A failing notebook stops the study (its partly executed copy is still rendered, to read the error);
    finished experiments are read back from ``artifacts_dir``, so running again resumes. Bad arguments (an
    unknown notebook, profile, device or data folder) stop it before any notebook runs, and a second study
    on the same ``artifacts_dir`` stops with :class:`effnb.utils.atomic.FolderBusy` while this one runs.

    ``budget_minutes`` (None: the profile's; 0: none, the profile's fixed epochs) or ``plan`` (a saved plan to
    repeat) plans the run before any notebook starts (:mod:`effnb.study.plan`); a plan already in the artifacts
    is reused.
    """
    started = time.time()
    stems = select_notebooks(only)
    budget = get_profile(profile).budget_minutes if budget_minutes is None else (budget_minutes or None)
    if plan is not None and not Path(plan).is_file():
        raise FileNotFoundError(f"--plan {plan}: no such file")
    pick_device()
    if data_dir:
        resolve_data_dir(data_dir)
    artifacts_dir = ensure_dir(Path(artifacts_dir).resolve(), "artifacts folder")
    reports_dir = ensure_dir(Path(reports_dir).resolve(), "reports folder")
    with locked(artifacts_dir / STUDY_LOCK, f"another effnb study is running on {artifacts_dir}: wait for it to "
                f"finish, or give another --artifacts-dir", wait=False):
        if budget is not None or plan is not None:
            _plan(profile, data_dir, artifacts_dir, seed, budget, plan, started)
        return _run_notebooks(stems, profile, data_dir, artifacts_dir, reports_dir, seed, Path(notebooks_dir))


def _plan(profile: str, data_dir: str | Path | None, artifacts_dir: Path, seed: int, budget: float | None,
          plan: str | Path | None, started: float) -> None:
    from effnb.study.budget import ensure_plan
    from effnb.study.context import prepare_study
    from effnb.study.plan import describe_plan

    print(f"== planning {profile} (decoding the images if needed, then timing the training step)", flush=True)
    study = prepare_study(profile, data_dir, artifacts_dir, seed)
    study.device = pick_device()
    made = ensure_plan(study, budget, plan, started)
    print(f"   {describe_plan(made)} ({artifacts_dir / 'plan.json'})", flush=True)


def select_notebooks(only: list[str] | None) -> list[str]:
    """The notebooks to run, in order: all, or those named in ``only`` (``01_data`` or ``data``); unknown names
    are an error."""
    if not only:
        return list(NOTEBOOKS.values())
    unknown = [name for name in only if name not in NOTEBOOKS and name not in NOTEBOOKS.values()]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}: choose from {', '.join(NOTEBOOKS.values())}")
    return [stem for name, stem in NOTEBOOKS.items() if stem in only or name in only]


def _run_notebooks(stems: list[str], profile: str, data_dir: str | Path | None, artifacts_dir: Path, reports_dir: Path,
                   seed: int, notebooks_dir: Path) -> list[Path]:
    params = {"profile": profile, "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
              "artifacts_dir": str(artifacts_dir), "seed": seed}
    reports = []
    for stem in stems:
        source = Path(notebooks_dir) / f"{stem}.ipynb"
        executed = artifacts_dir / "executed" / f"{stem}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        print(f"== {stem} ({profile})", flush=True)
        # papermill runs in its own process: its output streams to this terminal, and nothing of this
        # process (torch's threads) shares the kernel client's event loop
        command = [sys.executable, "-c", PAPERMILL, str(source), str(executed), "-y", json.dumps(params),
                   "--cwd", str(Path(notebooks_dir)), "-k", "python3", "--log-output", "--no-progress-bar"]
        try:
            code = run_child(command, env=os.environ | {BATCH_ENV: "1"})
        except (KeyboardInterrupt, SystemExit):
            print(f"== {stem} stopped: its notebook process and kernel were ended", file=sys.stderr, flush=True)
            raise
        if code != 0:
            if executed.is_file():
                render_html(executed, reports_dir / f"{stem}.html")
            raise NotebookFailed(f"{stem} failed: {failed_cell_error(executed)} (partial report: "
                                 f"{reports_dir / f'{stem}.html'})")
        reports.append(render_html(executed, reports_dir / f"{stem}.html"))
        seconds, _ = papermill_times(nbformat.read(executed, as_version=4))
        print(f"   {format_minutes(seconds)} -> {reports[-1]}", flush=True)
    publish_final(artifacts_dir, reports_dir)
    write_index(reports_dir, artifacts_dir)
    return reports
