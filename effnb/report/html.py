"""HTML reports of executed notebooks, rendered with nbconvert.

A report is what a reader needs: prose, tables and figures. Code inputs are in the page but hidden until
"show code" is ticked; the parameters cells (papermill's holds this machine's paths) and stderr (progress
bars, warnings) are left out; each page has its notebook's title and a link back to ``index.html``.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from effnb.utils.atomic import write_text

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PARAMETER_TAGS = {"parameters", "injected-parameters"}


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
