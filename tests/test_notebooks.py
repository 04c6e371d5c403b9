"""The paired notebooks: in sync with their jupytext sources, no outputs, a papermill parameters cell."""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from effnb.study import NOTEBOOKS

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
