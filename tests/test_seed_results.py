"""Every number quoted from the seed study is on the line of seed 000 that the code says it is."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from effnb import seed_study as seed

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seeds" / seed.SEED_FILE
LINES = SEED.read_text().splitlines() if SEED.is_file() else []
needs_seed = pytest.mark.skipif(not LINES, reason=f"{SEED} not beside the repository")
QUOTES = {name: q for name, q in vars(seed).items() if isinstance(q, seed.Quoted)}
ROWS = list(seed.BASELINES.values()) + [row for _, row in seed.GRID] + list(seed.FINAL.values())


@needs_seed
@pytest.mark.parametrize("name", sorted(QUOTES))
def test_quoted_value_is_on_its_line(name):
    q = QUOTES[name]
    line = LINES[q.line - 1]
    assert q.text in line, f"{name}: {q.text!r} not on line {q.line}: {line!r}"
    for token in re.findall(r"[0-9.]+|[A-Z]", str(q.value)):
        assert token in q.text.replace(",", ""), f"{name}: {token} not in {q.text!r}"


@needs_seed
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.name}@{r.line}")
def test_result_row_is_on_its_line(row):
    line = LINES[row.line - 1]
    assert f"{row.loss:.4f}" in line and f"{100 * row.accuracy:.2f}%" in line, line


@needs_seed
def test_grid_multipliers_are_the_seeds():
    for (a, b, g), row in seed.GRID:
        cells = [c.strip() for c in LINES[row.line - 1].split("|")]
        assert (float(cells[2]), float(cells[3]), float(cells[4])) == (a, b, g)
