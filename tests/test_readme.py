"""The README quotes the study's results and profiles from the files the study writes, never by hand."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from effnb.report import readme

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FINAL = json.loads((ROOT / "reports" / "models" / "final.json").read_text())
ABLATION = json.loads((ROOT / "reports" / "ablation.json").read_text())
PHI_ABLATION = json.loads((ROOT / "reports" / "ablation-phi.json").read_text())


@pytest.mark.parametrize("name", ["profiles", "results", "ablation", "ablation_phi"])
def test_generated_blocks_match_the_committed_results_and_profiles(name):
    assert readme.read_block(README, name) == readme.blocks(FINAL, ABLATION, PHI_ABLATION)[name], (
        f"README block {name!r} is stale: run `effnb study --render-only --readme README.md`")


def test_an_ablation_with_rows_at_different_budgets_shows_each_budget_and_the_difference():
    table = readme.ablation_markdown(PHI_ABLATION)
    assert PHI_ABLATION["what"] in table and "| budget | train min |" in table
    for row in PHI_ABLATION["rows"]:
        assert f"| {row['variant']} | {row['what changed']} | {row['budget']} |" in table
    challenger = PHI_ABLATION["rows"][1]["fixres_vs_reference"]
    assert f"{100 * challenger['difference']:+.2f} [" in table and f"p = {challenger['p_value']:.2g}" in table


def test_no_accuracy_is_quoted_outside_the_generated_blocks():
    outside = re.sub(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", "", README, flags=re.S)
    assert not re.findall(r"\d+\.\d+ ?%", outside)


def test_a_stale_readme_fails(tmp_path):
    changed = json.loads(json.dumps(FINAL))
    changed["rows"][-1]["accuracy"] = 0.5
    path = tmp_path / "README.md"
    path.write_text(README)
    assert readme.read_block(path.read_text(), "results") == readme.blocks(FINAL)["results"]
    readme.update_readme(path, changed)
    assert readme.read_block(path.read_text(), "results") != readme.blocks(FINAL)["results"]
    assert "50.00 %" in readme.read_block(path.read_text(), "results")


def test_missing_markers_are_a_clear_error():
    with pytest.raises(readme.ReadmeError, match="no generated block 'results'"):
        readme.read_block("# a README without blocks\n", "results")


def test_the_flip_tta_row_follows_the_fixres_rows():
    with_tta = json.loads(json.dumps(FINAL))
    chosen = next(r for r in with_tta["rows"] if r["id"] == with_tta["chosen_step"])
    with_tta["tta"] = {**chosen, "label": "chosen + horizontal-flip TTA", "accuracy": 0.625, "n": 4000}
    table = readme.results_markdown(with_tta)
    assert "| chosen + horizontal-flip TTA |" in table and "62.50 %" in table
    assert table.index(chosen["label"]) < table.index("horizontal-flip TTA")
    without = {k: v for k, v in FINAL.items() if k != "tta"}  # final.json files written before the TTA row
    assert "horizontal-flip TTA" not in readme.results_markdown(without)


def test_the_index_table_ends_with_the_flip_tta_row():
    from effnb.report.index import final_table

    table = final_table(FINAL)
    rows = len(FINAL["rows"]) + ("tta" in FINAL)
    assert len(table) == rows
    if "tta" in FINAL:
        assert table["model"].iloc[-1] == FINAL["tta"]["label"]
    assert len(final_table({k: v for k, v in FINAL.items() if k != "tta"})) == len(FINAL["rows"])
