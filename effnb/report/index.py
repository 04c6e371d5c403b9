"""The study's front page and published models: ``reports/index.html``, built from the notebooks' own outputs,
and ``reports/models`` (the final models and their ``final.json``)."""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path

import jinja2
import nbformat
import pandas as pd
from nbconvert.filters import markdown2html

from effnb.report.html import (
    TEMPLATES_DIR,
    format_minutes,
    notebook_title,
    papermill_times,
    render_html,
)
from effnb.report.plots import plot_accuracy_vs_compute
from effnb.report.publish_compute import publish_compute
from effnb.study.compute import answer_paragraph, compute_points
from effnb.study.holdout import RECORD, merge_reads, reads_of, reads_table
from effnb.study.outputs import NOTEBOOKS, OutputMissing, read_output
from effnb.study.plan import PLAN_FILE, describe_plan, planned_against_actual, read_plan
from effnb.study.stats import accuracy_interval
from effnb.utils.atomic import copy_file, write_json, write_text


def publish_final(artifacts_dir: Path, reports_dir: Path) -> Path | None:
    """Copy the final notebook's output and the checkpoints it names (each well under 1 MB) into ``reports/models``.

    The published ``final.json`` names its checkpoints relative to ``reports/`` (no paths of this machine);
    checkpoints of an earlier run that it does not name are removed, so ``reports/models`` is one run's. The reads of
    ``test2`` are added to the history kept beside it (:func:`publish_test2_reads`); the accuracy-against-compute
    points and figure (:func:`effnb.report.publish_compute.publish_compute`) and the run's plan are published too.
    """
    if not (Path(artifacts_dir) / "final.json").is_file():
        return None
    final = read_output(artifacts_dir, "final")
    models = reports_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for row in [*final["rows"], *([final["tta"]] if final.get("tta") else [])]:
        source = Path(artifacts_dir) / row.pop("checkpoint")  # relative to the artifacts folder
        target = models / f"{source.parent.name}.pt"
        copy_file(source, target)
        row["published_checkpoint"] = str(target.relative_to(reports_dir))
    named = {reports_dir / row["published_checkpoint"] for row in final["rows"]}
    for stale in set(models.glob("*.pt")) - named:
        stale.unlink()
    write_json(models / "final.json", final)
    publish_test2_reads(artifacts_dir, reports_dir)
    publish_compute(artifacts_dir, reports_dir)
    plan = Path(artifacts_dir) / PLAN_FILE
    if plan.is_file():  # so `effnb study --plan reports/models/plan.json` repeats this run
        copy_file(plan, models / PLAN_FILE)
    else:
        (models / PLAN_FILE).unlink(missing_ok=True)
    return models / "final.json"


TEST2_READS = "models/test2-reads.json"  # under reports/: every recorded read of test2, across artifacts folders


def publish_test2_reads(artifacts_dir: Path, reports_dir: Path) -> list[dict]:
    """Add the reads of ``test2`` that this artifacts folder's guard recorded to ``reports/models/test2-reads.json``
    (the reads published before are kept: a fresh artifacts folder does not reset the history); the history."""
    published, record = reports_dir / TEST2_READS, Path(artifacts_dir) / RECORD
    earlier = json.loads(published.read_text())["reads"] if published.is_file() else []
    if not record.is_file():
        return earlier
    reads = merge_reads(earlier, reads_of(json.loads(record.read_text())))
    published.parent.mkdir(parents=True, exist_ok=True)
    write_json(published, {"what": "every recorded read of test2 by notebook 06 (effnb.study.holdout)", "reads": reads})
    return reads


def render_reports(artifacts_dir: str | Path = "artifacts", reports_dir: str | Path = "reports") -> list[Path]:
    """Render the executed notebooks again (no execution), and the index."""
    artifacts_dir, reports_dir = Path(artifacts_dir).resolve(), Path(reports_dir).resolve()
    reports = [render_html(executed, reports_dir / f"{stem}.html")
               for stem in NOTEBOOKS.values() if (executed := artifacts_dir / "executed" / f"{stem}.ipynb").is_file()]
    publish_final(artifacts_dir, reports_dir)
    write_index(reports_dir, artifacts_dir)
    return reports


def final_table(final: dict) -> pd.DataFrame:
    """The final notebook's rows as the index shows them (the flip-TTA row last, where the run has one): accuracy in %
    with its 95 % interval."""
    rows = []
    for r in [*final["rows"], *([final["tta"]] if "tta" in final else [])]:
        low, high = accuracy_interval(r["accuracy"], r["n"])
        rows.append({"model": r["label"], "test resolution (px)": r["k_test"], "loss": f"{r['loss']:.4f}",
                     "accuracy": f"{100 * r['accuracy']:.2f} %", "95 % interval": f"{100 * low:.1f}–{100 * high:.1f} %",
                     "extra CPU time": format_minutes(r["extra_seconds"]) if r.get("extra_seconds") else "–"})
    return pd.DataFrame(rows)


def answer(artifacts_dir: Path, final: dict | None, run: dict | None) -> tuple[str, str] | None:
    """The answer paragraph (HTML) and the accuracy-against-compute figure (a PNG data URI), or None before the
    final notebook has run."""
    try:
        points = compute_points(artifacts_dir) if final and run else None
    except (OutputMissing, FileNotFoundError, KeyError):  # an output of an older effnb: the index goes without
        points = None
    if not points:
        return None
    fig, png = plot_accuracy_vs_compute(points), io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    fig.clf()
    uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    return markdown2html(answer_paragraph(final, points, run["machine"])), uri


def write_index(reports_dir: Path, artifacts_dir: Path) -> Path:
    """``reports/index.html``, the study's front page: the question, each notebook's findings, the final table, the reports."""
    stages, actual = [], {}
    for name, stem in NOTEBOOKS.items():
        executed = Path(artifacts_dir) / "executed" / f"{stem}.ipynb"
        if not (reports_dir / f"{stem}.html").is_file() or not executed.is_file():
            continue
        notebook = nbformat.read(executed, as_version=4)
        seconds, ended = papermill_times(notebook)
        actual[stem] = seconds
        output = read_output(artifacts_dir, name) if (Path(artifacts_dir) / f"{name}.json").is_file() else {}
        stages.append({"href": f"{stem}.html", "title": notebook_title(notebook), "wall": format_minutes(seconds),
                       "ended": (ended or "")[:16].replace("T", " "),
                       "findings": [markdown2html(text) for text in output.get("findings", [])]})
    final = read_output(artifacts_dir, "final") if (Path(artifacts_dir) / "final.json").is_file() else None
    run = next((read_output(artifacts_dir, s)["run"] for s in NOTEBOOKS if (Path(artifacts_dir) / f"{s}.json").is_file()),
               None)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    reads_file = reports_dir / TEST2_READS
    reads = json.loads(reads_file.read_text())["reads"] if reads_file.is_file() else []
    plan = read_plan(artifacts_dir)
    page = env.get_template("index.html.j2").render(
        plan=markdown2html(describe_plan(plan)) if plan else None,
        plan_table=pd.DataFrame(planned_against_actual(plan, actual)).fillna("–").to_html(index=False, border=0)
        if plan else None,
        test2_reads=pd.DataFrame(reads_table(reads)).to_html(index=False, border=0) if reads else None,
        test2_read_count=len(reads),
        stages=stages, run=run, generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        final=final, answer=answer(Path(artifacts_dir), final, run), final_table=final_table(final).to_html(index=False, border=0, classes="results") if final else None)
    path = reports_dir / "index.html"
    write_text(path, page)
    return path
