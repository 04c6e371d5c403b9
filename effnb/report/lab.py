"""JupyterLab integration: keep the tracked notebooks in the form the repository holds them.

``make lab`` starts JupyterLab with ``jupyter/jupyter_server_config.py``, which installs :func:`strip_on_save`
as the contents manager's pre-save hook. Running a study notebook in JupyterLab then saves its paired
``.ipynb`` without outputs, execution counts or per-session metadata (outputs stay on screen; executed copies
belong in ``reports/``), so ``git status`` shows only what the user typed, and the tests still pass.
"""
from __future__ import annotations

from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KEPT_NOTEBOOK_METADATA = ("kernelspec", "jupytext")
KEPT_CELL_METADATA = ("tags",)  # the papermill "parameters" tag


def strip_notebook(notebook: dict) -> dict:
    """Remove outputs, execution counts and metadata other than the kernel, the pairing and cell tags (in place)."""
    notebook["metadata"] = {k: v for k, v in notebook["metadata"].items() if k in KEPT_NOTEBOOK_METADATA}
    for cell in notebook["cells"]:
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in KEPT_CELL_METADATA}
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return notebook


def strip_on_save(model: dict, path: str, contents_manager, **kwargs) -> None:
    """jupyter_server pre-save hook: strip the study's notebooks (those in ``notebooks/``) before they are written."""
    if model.get("type") != "notebook":
        return
    if (Path(contents_manager.root_dir) / path).resolve().parent == NOTEBOOKS_DIR:
        strip_notebook(model["content"])
