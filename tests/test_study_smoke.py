"""The whole study, end to end, with the ``smoke`` profile, through the runner a user calls."""
from __future__ import annotations

import json

import pytest
from synthetic import make_image_folder

from effnb.cli import main
from effnb.profiles import PROFILES, get_profile
from effnb.study import NOTEBOOKS, StageMissing, read_stage


def test_profiles_are_defined_in_one_place():
    assert set(PROFILES) == {"smoke", "cpu", "full"}
    assert get_profile("full").final_phi == 4 and get_profile("full").final_epochs == 150
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("laptop")


def test_missing_stage_names_the_notebook_to_run(tmp_path):
    with pytest.raises(StageMissing, match="02_baselines"):
        read_stage(tmp_path, "baselines")


@pytest.mark.slow
def test_smoke_study_writes_every_report_and_final_json(tmp_path, capsys):
    data = make_image_folder(tmp_path / "PetImages", per_class=150, size=(72, 96), seed=1)
    artifacts, reports = tmp_path / "artifacts", tmp_path / "reports"
    code = main(["study", "--profile", "smoke", "--data-dir", str(data), "--artifacts-dir", str(artifacts),
                 "--reports-dir", str(reports)])
    assert code == 0, capsys.readouterr().err
    for stem in NOTEBOOKS.values():
        html = (reports / f"{stem}.html").read_text()
        assert "profile &#x27;smoke&#x27;" in html or "profile 'smoke'" in html
    index = (reports / "index.html").read_text()
    assert all(f"{stem}.html" in index for stem in NOTEBOOKS.values()) and "Final results" in index
    final = json.loads((artifacts / "final.json").read_text())
    assert len(final["rows"]) == 5
    for row in final["rows"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0 and row["n"] == final["test2_images"]
    published = json.loads((reports / "models" / "final.json").read_text())
    assert all((reports / row["published_checkpoint"]).is_file() for row in published["rows"])
    data_stage = json.loads((artifacts / "data.json").read_text())
    assert 0.2 <= data_stage["sigma"] <= 0.7

    # running again resumes: every experiment is read back, none is trained again
    assert main(["study", "--profile", "smoke", "--data-dir", str(data), "--artifacts-dir", str(artifacts),
                 "--reports-dir", str(reports), "--only", "02_baselines"]) == 0
    executed = (artifacts / "executed" / "02_baselines.ipynb").read_text()
    assert "finished earlier: read back" in executed
