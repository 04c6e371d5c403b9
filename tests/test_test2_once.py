"""The final split is read exactly once: only notebook 06 reaches it, and not again after a choice changed."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import numpy as np
import pytest

from effnb.study import holdout
from effnb.study.context import prepare_study
from effnb.study.outputs import NOTEBOOKS, write_output

ROOT = Path(__file__).resolve().parents[1]


def code_of(stem: str) -> str:
    return "\n".join(c.source for c in jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells if c.cell_type == "code")


@pytest.mark.parametrize("stem", [s for s in NOTEBOOKS.values() if s != "06_final"])
def test_no_notebook_before_06_reaches_test2(stem):
    code = code_of(stem)
    assert not re.search(r"test2|read_test2|split_indices", code), f"{stem} reaches the final split"


def test_notebook_06_reads_test2_once_through_the_guard():
    code = code_of("06_final")
    assert code.count("read_test2(study)") == 1
    assert "split_indices" not in code and 'splits["test2"]' not in code


def test_only_the_split_plumbing_fetches_test2():
    fetch = re.compile(r'split_indices\(|\[\s*"test2"\s*\]')
    fetching = {p.name for p in (ROOT / "effnb").glob("*.py") if fetch.search(p.read_text())}
    assert fetching <= {"data.py", "study.py", "holdout.py", "cli.py"}, fetching


STAGES = {
    "baselines": {"chosen": "C"},
    "grid": {"alpha": 1.2, "beta": 1.05, "gamma": 1.23},
    "scaling": {"checkpoint": "/x/experiments/final-C-phi1-abc/model.pt"},
    "finetune": {"k_test": 126, "k_image_test": 142, "chosen_step": "bn_recal",
                 "variants": {"bn_recal": {"checkpoint": "/x/experiments/fixres-bn_recal-def/model.pt"}}},
}


@pytest.fixture
def study(image_folder, tmp_path):
    s = prepare_study("smoke", image_folder, tmp_path)
    for stage, data in STAGES.items():
        write_output(tmp_path, stage, data)
    return s


def test_test2_is_kept_out_of_the_splits(study):
    assert set(study.splits) == {"train", "test"}
    test2 = study.split_indices("test2")
    assert len(test2) and not set(test2) & (set(study.splits["train"]) | set(study.splits["test"]))
    assert study.label_counts().loc["total"].to_dict() == {
        "train": len(study.splits["train"]), "test": len(study.splits["test"]), "test2": len(test2)}


def test_reading_test2_records_the_choices_and_refuses_after_a_change(study, tmp_path):
    first = holdout.read_test2(study)
    assert (first == study.split_indices("test2")).all()
    record = json.loads((tmp_path / holdout.RECORD).read_text())
    assert record["choices"]["k_test"] == 126 and record["choices"]["final_model"] == "final-C-phi1-abc"
    assert np.array_equal(holdout.read_test2(study), first)  # the same choices: a resumed study reads it again
    reads = json.loads((tmp_path / holdout.RECORD).read_text())["reads"]
    assert len(reads) == 2 and reads[0]["profile"] == "smoke" and reads[0]["fixres_step"] == "bn_recal"
    assert reads[0]["at"] <= reads[1]["at"] and reads[0]["final_model"] == "final-C-phi1-abc"
    write_output(tmp_path, "finetune", STAGES["finetune"] | {"k_test": 139})
    with pytest.raises(holdout.Test2AlreadyUsed, match="changed since: k_test"):
        holdout.read_test2(study)


def test_provenance_hashes_profile_and_recipe(study):
    record = holdout.provenance(study)
    assert record["profile"]["name"] == "smoke" and record["recipe"]["name"] == "budget"
    assert record["profile_recipe_hash"] == holdout.fingerprint({"profile": record["profile"], "recipe": record["recipe"]})
    assert set(record["code"]) == {"commit", "modified"}


def test_a_record_written_before_reads_were_listed_counts_as_one_read_of_unknown_time(study, tmp_path):
    choices = holdout.study_choices(study)
    legacy = {"choices_hash": holdout.fingerprint(choices), "choices": choices, "code": {"commit": "abc", "modified": False}}
    (tmp_path / holdout.RECORD).write_text(json.dumps(legacy))
    holdout.read_test2(study)
    reads = json.loads((tmp_path / holdout.RECORD).read_text())["reads"]
    assert [r["at"] is None for r in reads] == [True, False] and reads[0]["code"]["commit"] == "abc"
    assert holdout.reads_table(reads)[0]["when (UTC)"] == "not recorded"
    recovered = {**reads[0], "published_in": {"commit": "09de2210c0ffee", "date": "2026-11-29T20:08:42+00:00"}}
    assert holdout.reads_table([recovered])[0]["when (UTC)"] == "not recorded; published 2026-11-29 in 09de2210c0"


def test_choosing_flip_tta_is_a_choice_and_a_run_without_it_keeps_its_hash(study, tmp_path):
    without = holdout.study_choices(study)
    assert "flip_tta" not in without  # the hash of a record written before TTA could be chosen is unchanged
    write_output(tmp_path, "finetune", STAGES["finetune"] | {"tta": False})
    assert holdout.study_choices(study) == without
    holdout.read_test2(study)
    write_output(tmp_path, "finetune", STAGES["finetune"] | {"tta": True})
    assert holdout.study_choices(study)["flip_tta"] is True
    with pytest.raises(holdout.Test2AlreadyUsed, match="changed since: flip_tta"):
        holdout.read_test2(study)
