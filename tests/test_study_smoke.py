"""The whole study, end to end, with the ``smoke`` profile, through the runner a user calls; and its reports."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from synthetic import make_image_folder

from effnb.cli.commands import main
from effnb.study.holdout import fingerprint
from effnb.study.outputs import NOTEBOOKS, OutputMissing, read_output
from effnb.study.profiles import PROFILES, get_profile

REPO = Path(__file__).resolve().parents[1]


def test_profiles_are_defined_in_one_place():
    assert set(PROFILES) == {"smoke", "cpu", "full"}
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("laptop")


def test_missing_output_names_the_notebook_to_run(tmp_path):
    with pytest.raises(OutputMissing, match="02_baselines"):
        read_output(tmp_path, "baselines")


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory) -> Path:
    """Run the whole smoke study once for this module; returns its folder (data, artifacts, reports)."""
    root = tmp_path_factory.mktemp("smoke")
    data = make_image_folder(root / "PetImages", per_class=150, size=(72, 96), seed=1)
    code = main(["study", "--profile", "smoke", "--data-dir", str(data), "--artifacts-dir", str(root / "artifacts"),
                 "--reports-dir", str(root / "reports")])
    assert code == 0
    return root


@pytest.mark.slow
def test_smoke_study_writes_every_report_and_final_json(smoke_study):
    artifacts, reports = smoke_study / "artifacts", smoke_study / "reports"
    for stem in NOTEBOOKS.values():
        html = (reports / f"{stem}.html").read_text()
        assert "profile &#x27;smoke&#x27;" in html or "profile 'smoke'" in html
    index = (reports / "index.html").read_text()
    assert all(f'href="{stem}.html"' in index for stem in NOTEBOOKS.values()) and "The final result" in index
    final = read_output(artifacts, "final")
    assert len(final["rows"]) == 5 and final["findings"]
    chosen = next(r for r in final["rows"] if r["id"] == final["chosen_step"])  # the answer opens the index
    assert f"<strong>{100 * chosen['accuracy']:.2f} %</strong>" in index and 'src="data:image/png;base64,' in index
    for text in ((artifacts / "final.json").read_text(), (reports / "models" / "final.json").read_text()):
        assert str(smoke_study) not in text and str(Path.home()) not in text  # no paths of this machine
    for row in final["rows"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0 and row["n"] == final["test2_images"]
    analysis = final["analysis"]  # the predictions grid: 5 FixRes steps and 3 baselines against every test2 image
    assert len(analysis["models"]) == 8 and analysis["images"] == final["test2_images"]
    assert 0 <= analysis["all_wrong"] <= analysis["any_wrong"] <= analysis["images"]
    assert len(analysis["hardest"]) == min(12, analysis["images"])
    assert "Across the 8 models" in (reports / "06_final.html").read_text()
    assert all("Stopping is by rank, not by a test" in (reports / f"{stem}.html").read_text()
               for stem in ("02_baselines", "03_grid"))  # the halving rule is stated before its results
    published = json.loads((reports / "models" / "final.json").read_text())
    assert all((reports / row["published_checkpoint"]).is_file() and "checkpoint" not in row
               for row in published["rows"])
    data = read_output(artifacts, "data")
    lo, hi = data["crop"]
    assert lo <= data["sigma"] <= hi and 0.2 <= data["sigma_seed_study_crop"] <= 0.7


@pytest.mark.slow
def test_smoke_study_decides_by_its_rules_and_records_how(smoke_study):
    artifacts = smoke_study / "artifacts"
    final = read_output(artifacts, "final")
    assert set(final["decisions"]) == {"baseline", "grid", "test_resolution", "fixres_step"}
    for decision in final["decisions"].values():
        assert decision["statement"].startswith("Decision rule") and decision["sentence"]
    grid = read_output(artifacts, "grid")["selection"]
    assert [r["epochs"] for r in grid["rungs"]] == [1, 1]  # the smoke profile's two rungs
    assert len(grid["rungs"][0]["results"]) == 6 and "experiment 1" in grid["rungs"][-1]["results"]
    prov = final["provenance"]
    assert prov["profile"]["name"] == "smoke" and prov["choices"]["baseline"] == final["decisions"]["baseline"]["chosen"]
    assert json.loads((artifacts / "test2_read.json").read_text())["choices_hash"] == fingerprint(prov["choices"])


@pytest.mark.slow
def test_reports_are_fit_for_a_reader(smoke_study):
    reports = smoke_study / "reports"
    machine_paths = [str(smoke_study), str(REPO), str(Path.home()), sys.prefix]
    for page in [*NOTEBOOKS.values(), "index"]:
        html = (reports / f"{page}.html").read_text()
        assert len(html.encode()) < 1_000_000, f"{page}.html weighs {len(html.encode()):,} bytes"
        title = re.search(r"<title>([^<]+)</title>", html)
        assert title and title.group(1).strip() not in {"Notebook", page}
        assert not [p for p in machine_paths if p in html], f"{page}.html shows a path of this machine"
        assert "PosixPath(" not in html and "application/vnd.jupyter.widget" not in html
        assert not re.findall(r"<script[^>]*\bsrc=|<link[^>]*href=\"https?:", html), f"{page}.html loads from the web"
        if page != "index":
            assert 'href="index.html"' in html and "What this shows" in html
            assert html.count("<b>Run:</b>") + html.count("<strong>Run:</strong>") == 1  # the run stated once
    # every report's wall time on the index comes from papermill's record of that run
    executed = json.loads((smoke_study / "artifacts" / "executed" / "04_scaling.ipynb").read_text())
    seconds = executed["metadata"]["papermill"]["duration"]
    shown = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    assert re.search(rf"04 · [^<]*</a></td><td>{re.escape(shown)}</td>", (reports / "index.html").read_text())


@pytest.mark.slow
def test_running_again_reads_finished_experiments_back(smoke_study):
    artifacts = smoke_study / "artifacts"
    assert main(["study", "--profile", "smoke", "--data-dir", str(smoke_study / "PetImages"), "--artifacts-dir",
                 str(artifacts), "--reports-dir", str(smoke_study / "reports"), "--only", "02_baselines"]) == 0
    assert "finished earlier: read back" in (artifacts / "executed" / "02_baselines.ipynb").read_text()
