"""Notebook outputs: written and read back unchanged, typed records round-trip, bad fields name the notebook."""
from __future__ import annotations

import json

import pytest

from effnb.study.outputs import (
    BaselinesOutput,
    FinetuneOutput,
    OutputMissing,
    read_output,
    write_output,
)

RESULT = {"spec": {"name": "C"}, "params": 1000, "flops": 2e6, "train_seconds": 3.5, "checkpoint": "/x/C/model.pt",
          "eval": {"accuracy": 0.75, "n": 40, "loss": 0.6}}
BASELINES = {"run": {"profile": "smoke"}, "chosen": "C",
             "results": {"A": {**RESULT, "checkpoint": "/x/A/model.pt", "eval": {**RESULT["eval"], "accuracy": 0.5}},
                         "C": RESULT},
             "selection": {"chosen": "C", "decision": {"chosen": "C"}}, "findings": ["C wins."]}
FINETUNE = {"run": {"profile": "smoke"}, "k_train": 64, "k_test": 80, "k_image_test": 90, "k_test_formula": 79.2,
            "variants": {"bn_recal": {"checkpoint": "/x/bn/model.pt", "train_seconds": 1.0},
                         "full": {"checkpoint": "/x/full/model.pt", "train_seconds": 12}},
            "chosen_step": "full", "tta": True, "table": [{"id": "full"}],
            "decisions": {"fixres_step": {"chosen": "full"}}, "findings": []}


def test_an_output_is_written_and_read_back_as_the_same_json(tmp_path):
    path = write_output(tmp_path, "baselines", BASELINES)
    assert path == tmp_path / "baselines.json" and json.loads(path.read_text()) == BASELINES
    assert read_output(tmp_path, "baselines") == BASELINES
    assert read_output(tmp_path, "grid", required=False) is None


@pytest.mark.parametrize(("name", "kind", "data"), [("baselines", BaselinesOutput, BASELINES),
                                                   ("finetune", FinetuneOutput, FINETUNE)])
def test_typed_outputs_round_trip(tmp_path, name, kind, data):
    record = kind.from_dict(data)
    assert record.to_dict() == data and kind.from_dict(record.to_dict()) == record
    write_output(tmp_path, name, data)
    assert read_output(tmp_path, name, kind=kind) == record


def test_typed_fields(tmp_path):
    baselines, ft = BaselinesOutput.from_dict(BASELINES), FinetuneOutput.from_dict(FINETUNE)
    assert baselines.chosen_result.raw is BASELINES["results"]["C"]
    assert baselines.chosen_result.accuracy == 0.75 and baselines.results["A"].checkpoint == "/x/A/model.pt"
    assert ft.variants["full"].checkpoint == "/x/full/model.pt" and ft.variants["full"].train_seconds == 12
    assert ft.preprocessing == {"k_test": 80, "k_image_test": 90} and ft.chosen_step == "full" and ft.tta is True
    older = {k: v for k, v in FINETUNE.items() if k != "tta"}  # written before 05 decided flip TTA: one forward pass
    assert FinetuneOutput.from_dict(older).tta is False
    with pytest.raises(OutputMissing, match="'tta' is not"):
        FinetuneOutput.from_dict({**FINETUNE, "tta": "yes"})


def test_a_missing_output_names_the_notebook_to_run(tmp_path):
    with pytest.raises(OutputMissing, match=r"run notebooks/05_finetune\.ipynb first"):
        read_output(tmp_path, "finetune", kind=FinetuneOutput)
    (tmp_path / "finetune.json").write_text("{not json")
    with pytest.raises(OutputMissing, match=r"damaged .*05_finetune\.ipynb again"):
        read_output(tmp_path, "finetune")


@pytest.mark.parametrize(("name", "kind", "data", "field"), [
    ("baselines", BaselinesOutput, {**BASELINES, "chosen": "B"}, "results"),
    ("baselines", BaselinesOutput, {k: v for k, v in BASELINES.items() if k != "chosen"}, "chosen"),
    ("baselines", BaselinesOutput, {**BASELINES, "results": {"C": {**RESULT, "eval": {"n": 40}}}},
     "results.C.eval.accuracy"),
    ("baselines", BaselinesOutput, {**BASELINES, "results": {"C": {**RESULT, "eval": {"accuracy": "high"}}}},
     "results.C.eval.accuracy"),
    ("finetune", FinetuneOutput, {**FINETUNE, "variants": {"full": {"train_seconds": 1.0}}}, "variants.full.checkpoint"),
    ("finetune", FinetuneOutput, {**FINETUNE, "k_test": None}, "k_test"),
])
def test_a_malformed_field_names_the_field_and_the_notebook(tmp_path, name, kind, data, field):
    write_output(tmp_path, name, data)
    notebook = {"baselines": "02_baselines", "finetune": "05_finetune"}[name]
    with pytest.raises(OutputMissing, match=rf"{name}\.json: .*'{field}'.*run notebooks/{notebook}\.ipynb again"):
        read_output(tmp_path, name, kind=kind)


def test_a_record_reads_only_its_own_notebook(tmp_path):
    with pytest.raises(ValueError, match="BaselinesOutput"):
        read_output(tmp_path, "finetune", kind=BaselinesOutput)
