"""The paired notebooks: in sync with their jupytext sources, no outputs, a papermill parameters cell."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jupytext
import nbformat
import pytest

from effnb.report.lab import strip_on_save
from effnb.study.context import NOTEBOOKS

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STEMS = list(NOTEBOOKS.values())


def test_every_stage_has_a_notebook_pair():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.py")) == STEMS
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_pair_in_sync_and_stripped(stem):
    source = jupytext.read(NOTEBOOK_DIR / f"{stem}.py")
    paired = nbformat.read(NOTEBOOK_DIR / f"{stem}.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in source.cells] == [(c.cell_type, c.source) for c in paired.cells]
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{stem}.ipynb carries outputs"


@pytest.mark.parametrize("stem", STEMS)
def test_parameters_cell(stem):
    cells = [c for c in jupytext.read(NOTEBOOK_DIR / f"{stem}.py").cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    names = {line.split("=")[0].strip() for line in cells[0].source.splitlines() if "=" in line}
    assert {"profile", "data_dir", "artifacts_dir", "seed"} <= names


@pytest.mark.parametrize("stem", STEMS)
def test_every_code_cell_follows_prose(stem):
    cells = jupytext.read(NOTEBOOK_DIR / f"{stem}.py").cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    for before, cell in zip(cells, cells[1:]):
        assert cell.cell_type == "markdown" or before.cell_type == "markdown", f"{stem}: {cell.source[:60]!r}"
    assert cells[-2].source.startswith("## What this shows") and "conclude(" in cells[-1].source


@pytest.mark.parametrize("stem", STEMS)
def test_saving_from_jupyterlab_leaves_the_tracked_notebook_unchanged(stem, tmp_path):
    """Run in JupyterLab, a notebook gains outputs, counts and session metadata; the pre-save hook removes them."""
    tracked = (NOTEBOOK_DIR / f"{stem}.ipynb").read_text()
    used = nbformat.reads(tracked, as_version=4)
    used.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    used.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for count, cell in enumerate(used.cells):
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="epoch 1\n")]
            cell.execution_count = count
    model = {"type": "notebook", "content": used}
    strip_on_save(model, path=f"notebooks/{stem}.ipynb", contents_manager=SimpleNamespace(root_dir=NOTEBOOK_DIR.parent))
    assert nbformat.writes(model["content"]) + "\n" == tracked


def test_notebooks_elsewhere_keep_their_outputs(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", execution_count=1)])
    model = {"type": "notebook", "content": notebook}
    strip_on_save(model, path="scratch.ipynb", contents_manager=SimpleNamespace(root_dir=tmp_path))
    assert notebook.cells[0].execution_count == 1


def test_the_study_runs_papermill_without_the_iri_checker_and_nbformat_still_validates():
    import subprocess
    import sys

    from effnb.report.execute import PAPERMILL, WITHOUT_IRI_CHECKER

    check = (f"{WITHOUT_IRI_CHECKER}; import nbformat; nbformat.validate(nbformat.v4.new_notebook()); "
             "assert 'lark' not in sys.modules, 'the IRI checker was imported'")
    subprocess.run([sys.executable, "-c", check], check=True)
    usage = subprocess.run([sys.executable, "-c", PAPERMILL, "--help"], capture_output=True, text=True, check=True)
    assert "Usage: papermill" in usage.stdout and "--parameters_yaml" in usage.stdout
