"""Run the study: execute the notebooks in order with papermill, render HTML reports with nbconvert, write an index.

A report is what a reader needs: prose, tables and figures. Code inputs are in the page but hidden until
"show code" is ticked; the parameters cells (papermill's holds this machine's paths) and stderr (progress
bars, warnings) are left out; each page has its notebook's title and a link back to ``index.html``, the
study's front page, built from the stages' own outputs.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import nbformat
import pandas as pd
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html
from nbconvert.preprocessors import TagRemovePreprocessor

from effnb.data.download import resolve_data_dir
from effnb.study.context import NOTEBOOKS, read_stage
from effnb.study.profiles import get_profile
from effnb.study.stats import accuracy_interval
from effnb.utils.atomic import copy_file, ensure_dir, locked, write_json, write_text
from effnb.utils.device import pick_device
from effnb.utils.progress import BATCH_ENV

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
STUDY_LOCK = ".study.lock"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PARAMETER_TAGS = {"parameters", "injected-parameters"}


class NotebookFailed(RuntimeError):
    """A notebook of the study raised; the earlier reports and artifacts are kept."""


def papermill_times(executed: nbformat.NotebookNode) -> tuple[float | None, str | None]:
    """The wall time in seconds and the end time of a run, as papermill recorded them in the notebook."""
    meta = executed.metadata.get("papermill", {})
    return meta.get("duration"), meta.get("end_time")


def notebook_title(notebook: nbformat.NotebookNode) -> str:
    """The first Markdown heading of a notebook (the report's ``<title>``)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "effnb report"


def reader_view(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The executed notebook as a reader meets it: no stderr outputs, no saved widget state."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    notebook.metadata["title"] = notebook_title(notebook)
    return notebook


def render_html(executed: Path, html_path: Path) -> Path:
    """Render an executed notebook to a standalone HTML report (see the module docstring)."""
    notebook = reader_view(nbformat.read(executed, as_version=4))
    seconds, ended = papermill_times(notebook)
    run = f"ran {format_minutes(seconds)}" + (f", finished {ended[:16].replace('T', ' ')} UTC" if ended else "")
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(TEMPLATES_DIR)],
                            exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=PARAMETER_TAGS), enabled=True)
    body, _ = exporter.from_notebook_node(notebook, resources={"effnb_run": run if seconds is not None else ""})
    write_text(html_path, body)
    return html_path


def format_minutes(seconds: float | None) -> str:
    if seconds is None:
        return "not finished"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


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
              only: list[str] | None = None) -> list[Path]:
    """Execute the six notebooks in order into ``artifacts_dir/executed`` and render them into ``reports_dir``.

    A failing notebook stops the study (its partly executed copy is still rendered, to read the error);
    finished experiments are read back from ``artifacts_dir``, so running again resumes. Bad arguments (an
    unknown notebook, profile, device or data folder) stop it before any notebook runs, and a second study
    on the same ``artifacts_dir`` stops with :class:`effnb.utils.atomic.FolderBusy` while this one runs.
    """
    stems = select_notebooks(only)
    get_profile(profile)
    pick_device()
    if data_dir:
        resolve_data_dir(data_dir)
    artifacts_dir = ensure_dir(Path(artifacts_dir).resolve(), "artifacts folder")
    reports_dir = ensure_dir(Path(reports_dir).resolve(), "reports folder")
    with locked(artifacts_dir / STUDY_LOCK, f"another effnb study is running on {artifacts_dir}: wait for it to "
                f"finish, or give another --artifacts-dir", wait=False):
        return _run_notebooks(stems, profile, data_dir, artifacts_dir, reports_dir, seed, Path(notebooks_dir))


def select_notebooks(only: list[str] | None) -> list[str]:
    """The notebooks to run, in order: all, or those named in ``only`` (``01_data`` or ``data``); unknown names
    are an error."""
    if not only:
        return list(NOTEBOOKS.values())
    unknown = [name for name in only if name not in NOTEBOOKS and name not in NOTEBOOKS.values()]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}: choose from {', '.join(NOTEBOOKS.values())}")
    return [stem for stage, stem in NOTEBOOKS.items() if stem in only or stage in only]


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
        command = [sys.executable, "-m", "papermill", str(source), str(executed), "-y", json.dumps(params),
                   "--cwd", str(Path(notebooks_dir)), "-k", "python3", "--log-output", "--no-progress-bar"]
        if subprocess.run(command, env=os.environ | {BATCH_ENV: "1"}).returncode != 0:
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


def publish_final(artifacts_dir: Path, reports_dir: Path) -> Path | None:
    """Copy the final stage's output and the checkpoints it names (each well under 1 MB) into ``reports/models``.

    The published ``final.json`` names its checkpoints relative to ``reports/`` (no paths of this machine);
    checkpoints of an earlier run that it does not name are removed, so ``reports/models`` is one run's.
    """
    if not (Path(artifacts_dir) / "final.json").is_file():
        return None
    final = read_stage(artifacts_dir, "final")
    models = reports_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for row in final["rows"]:
        source = Path(row.pop("checkpoint"))
        target = models / f"{source.parent.name}.pt"
        copy_file(source, target)
        row["published_checkpoint"] = str(target.relative_to(reports_dir))
    named = {reports_dir / row["published_checkpoint"] for row in final["rows"]}
    for stale in set(models.glob("*.pt")) - named:
        stale.unlink()
    write_json(models / "final.json", final)
    return models / "final.json"


def render_reports(artifacts_dir: str | Path = "artifacts", reports_dir: str | Path = "reports") -> list[Path]:
    """Render the executed notebooks again (no execution), and the index."""
    artifacts_dir, reports_dir = Path(artifacts_dir).resolve(), Path(reports_dir).resolve()
    reports = [render_html(executed, reports_dir / f"{stem}.html")
               for stem in NOTEBOOKS.values() if (executed := artifacts_dir / "executed" / f"{stem}.ipynb").is_file()]
    publish_final(artifacts_dir, reports_dir)
    write_index(reports_dir, artifacts_dir)
    return reports


def final_table(final: dict) -> pd.DataFrame:
    """The final stage's rows as the index shows them (the flip-TTA row last, where the run has one): accuracy in %
    with its 95 % interval."""
    rows = []
    for r in [*final["rows"], *([final["tta"]] if "tta" in final else [])]:
        low, high = accuracy_interval(r["accuracy"], r["n"])
        rows.append({"model": r["label"], "test resolution (px)": r["k_test"], "loss": f"{r['loss']:.4f}",
                     "accuracy": f"{100 * r['accuracy']:.2f} %", "95 % interval": f"{100 * low:.1f}–{100 * high:.1f} %",
                     "extra CPU time": format_minutes(r["extra_seconds"]) if r.get("extra_seconds") else "–"})
    return pd.DataFrame(rows)


def write_index(reports_dir: Path, artifacts_dir: Path) -> Path:
    """``reports/index.html``, the study's front page: the question, each stage's findings, the final table, the reports."""
    stages = []
    for stage, stem in NOTEBOOKS.items():
        executed = Path(artifacts_dir) / "executed" / f"{stem}.ipynb"
        if not (reports_dir / f"{stem}.html").is_file() or not executed.is_file():
            continue
        notebook = nbformat.read(executed, as_version=4)
        seconds, ended = papermill_times(notebook)
        output = read_stage(artifacts_dir, stage) if (Path(artifacts_dir) / f"{stage}.json").is_file() else {}
        stages.append({"href": f"{stem}.html", "title": notebook_title(notebook), "wall": format_minutes(seconds),
                       "ended": (ended or "")[:16].replace("T", " "),
                       "findings": [markdown2html(text) for text in output.get("findings", [])]})
    final = read_stage(artifacts_dir, "final") if (Path(artifacts_dir) / "final.json").is_file() else None
    run = next((read_stage(artifacts_dir, s)["run"] for s in NOTEBOOKS if (Path(artifacts_dir) / f"{s}.json").is_file()),
               None)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    page = env.get_template("index.html.j2").render(
        stages=stages, run=run, generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        final=final, final_table=final_table(final).to_html(index=False, border=0, classes="results") if final else None)
    path = reports_dir / "index.html"
    write_text(path, page)
    return path
