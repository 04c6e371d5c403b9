"""Run the study: execute the notebooks in order with papermill, render HTML reports with nbconvert, write an index."""
from __future__ import annotations

import html
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import torch
from nbconvert import HTMLExporter

from . import __version__
from .study import NOTEBOOKS
from .widgets import BATCH_ENV

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook of the study raised; the earlier reports and artifacts are kept."""


def report_header(executed: Path, seconds: float | None) -> str:
    """The line every report starts with: profile, data, wall time, versions."""
    params = nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("parameters", {})
    wall = f"{seconds / 60:.1f} min" if seconds is not None else "not finished"
    return (f"**Run:** profile `{params.get('profile')}`, data `{params.get('data_dir')}`, wall time {wall}, "
            f"effnb {__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{platform.machine()} with {os.cpu_count()} CPU cores"
            f"{', CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}.")


def render_html(executed: Path, html_path: Path, seconds: float | None = None) -> Path:
    """Render an executed notebook to a standalone HTML report, with the run header on top."""
    notebook = nbformat.read(executed, as_version=4)
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(report_header(executed, seconds)))
    body, _ = HTMLExporter().from_notebook_node(notebook)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path


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
    finished experiments are read back from ``artifacts_dir``, so running again resumes.
    """
    artifacts_dir, reports_dir = Path(artifacts_dir).resolve(), Path(reports_dir).resolve()
    params = {"profile": profile, "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
              "artifacts_dir": str(artifacts_dir), "seed": seed}
    timings_path = reports_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    reports = []
    for stem in NOTEBOOKS.values():
        if only and stem not in only:
            continue
        source = Path(notebooks_dir) / f"{stem}.ipynb"
        executed = artifacts_dir / "executed" / f"{stem}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        print(f"== {stem} ({profile})", flush=True)
        start = time.perf_counter()
        # papermill runs in its own process: its output streams to this terminal, and nothing of this
        # process (torch's threads) shares the kernel client's event loop
        command = [sys.executable, "-m", "papermill", str(source), str(executed), "-y", json.dumps(params),
                   "--cwd", str(Path(notebooks_dir)), "-k", "python3", "--log-output", "--no-progress-bar"]
        if subprocess.run(command, env=os.environ | {BATCH_ENV: "1"}).returncode != 0:
            if executed.is_file():
                render_html(executed, reports_dir / f"{stem}.html")
            raise NotebookFailed(f"{stem} failed: {failed_cell_error(executed)} (partial report: "
                                 f"{reports_dir / f'{stem}.html'})")
        timings[stem] = {"seconds": round(time.perf_counter() - start, 1), "profile": profile}
        reports.append(render_html(executed, reports_dir / f"{stem}.html", timings[stem]["seconds"]))
        timings_path.parent.mkdir(parents=True, exist_ok=True)
        timings_path.write_text(json.dumps(timings, indent=2))
        print(f"   {timings[stem]['seconds']:.0f} s -> {reports[-1]}", flush=True)
    publish_final(artifacts_dir, reports_dir)
    write_index(reports_dir, artifacts_dir, timings)
    return reports


def publish_final(artifacts_dir: Path, reports_dir: Path) -> Path | None:
    """Copy ``final.json`` and the final checkpoints it names (each well under 1 MB) into ``reports/models``."""
    final_path = artifacts_dir / "final.json"
    if not final_path.is_file():
        return None
    final = json.loads(final_path.read_text())
    models = reports_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for row in final["rows"]:
        source = Path(row["checkpoint"])
        target = models / f"{source.parent.name}.pt"
        shutil.copyfile(source, target)
        row["published_checkpoint"] = str(target.relative_to(reports_dir))
    (models / "final.json").write_text(json.dumps(final, indent=2))
    return models / "final.json"


def render_reports(artifacts_dir: str | Path = "artifacts", reports_dir: str | Path = "reports") -> list[Path]:
    """Render the executed notebooks again (no execution), with the recorded wall times, and the index."""
    artifacts_dir, reports_dir = Path(artifacts_dir).resolve(), Path(reports_dir).resolve()
    timings_path = reports_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    reports = [render_html(executed, reports_dir / f"{stem}.html", timings.get(stem, {}).get("seconds"))
               for stem in NOTEBOOKS.values() if (executed := artifacts_dir / "executed" / f"{stem}.ipynb").is_file()]
    publish_final(artifacts_dir, reports_dir)
    write_index(reports_dir, artifacts_dir, timings)
    return reports


def write_index(reports_dir: Path, artifacts_dir: Path, timings: dict) -> Path:
    """``reports/index.html``: links to every report with its wall time, and the final table when there is one."""
    rows = "".join(
        f"<tr><td><a href='{stem}.html'>{stem}</a></td><td>{timings.get(stem, {}).get('seconds', '–')}</td>"
        f"<td>{timings.get(stem, {}).get('profile', '–')}</td></tr>"
        for stem in NOTEBOOKS.values() if (reports_dir / f"{stem}.html").is_file())
    final_path = artifacts_dir / "final.json"
    table = ""
    if final_path.is_file():
        final = json.loads(final_path.read_text())
        table = "<h2>Final results (second test split)</h2><table><tr><th>model</th><th>test res</th><th>loss</th>" \
                "<th>accuracy</th></tr>" + "".join(
                    f"<tr><td>{html.escape(r['label'])}</td><td>{r['k_test']}</td><td>{r['loss']:.4f}</td>"
                    f"<td>{100 * r['accuracy']:.2f} %</td></tr>" for r in final["rows"]) + "</table>"
        table += f"<p>{html.escape(final.get('summary', ''))}</p>"
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>effnb study reports</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.3em .8em;border-bottom:1px solid #ddd}"
            "</style></head><body><h1>effnb: compound scaling and FixRes on cats vs dogs</h1>"
            f"<table><tr><th>report</th><th>wall time (s)</th><th>profile</th></tr>{rows}</table>{table}</body></html>")
    path = reports_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
