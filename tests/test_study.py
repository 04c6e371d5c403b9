"""The study's experiment recipes: which images, preprocessing and budgets each step of the study uses."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from effnb.data.splits import make_splits
from effnb.nn.model import BASELINES
from effnb.nn.scaling import scale
from effnb.study.context import Study
from effnb.study.profiles import get_profile

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

C = BASELINES["C"]


@pytest.fixture
def study(small_cache, tmp_path) -> Study:
    smoke = get_profile("smoke")
    profile = dataclasses.replace(
        smoke, selection=dataclasses.replace(smoke.selection, train_n=20, eval_n=10),
        final=dataclasses.replace(smoke.final, train_n=None),
        fixres=dataclasses.replace(smoke.fixres, finetune_n=16, bn_recal_n=8, sweep_n=12))
    splits = make_splits(np.asarray(small_cache.labels), 0, test_size=16, test2_size=8)
    return Study(small_cache, splits, profile, seed=0, artifacts_dir=tmp_path, root=tmp_path)


def test_selection_experiments_share_images_and_budget_and_differ_only_by_network(study):
    runs = [study.selection_experiment(spec) for spec in (C, BASELINES["A"], scale(C, 1.2, 1.05, 1.23, 1))]
    assert len({(r.train_indices, r.eval_indices, r.train, r.batch_size, r.seed) for r in runs}) == 1
    assert len(runs[0].train_indices) == 20 and set(runs[0].train_indices) <= set(study.splits["train"].tolist())
    assert set(runs[0].eval_indices) <= set(study.splits["test"].tolist())
    assert [r.name for r in runs] == ["C", "A", "C-a1.2-b1.05-g1.23-phi1"]
    assert len({r.key() for r in runs}) == 3


def test_an_experiment_is_its_content_not_its_label(study):
    baseline = study.selection_experiment(C)
    assert dataclasses.replace(baseline, name="another label").key() == baseline.key()
    # phi = 0 rebuilds the baseline's network: the same experiment, whatever the spec is called
    assert study.selection_experiment(scale(C, 1.2, 1.05, 1.23, 0)).key() == baseline.key()
    assert dataclasses.replace(baseline, seed=1).key() != baseline.key()


def test_training_uses_the_augmentation_at_k_train_and_evaluates_at_k_train(study):
    exp = study.selection_experiment(C)
    feed, val = exp.train_feed(study.cache), exp.eval_feed(study.cache)
    assert (feed.mode, feed.side) == ("train", C.resolution)
    assert (val.mode, val.side) == ("eval", C.resolution)


def test_final_model_trains_on_the_whole_train_split_and_never_sees_test2(study):
    exp = study.final_experiment(C)
    assert sorted(exp.train_indices) == sorted(study.splits["train"].tolist())
    assert not set(exp.train_indices) & set(study.splits["test2"].tolist())
    assert exp.eval_indices == study.selection_experiment(C).eval_indices


def test_fixres_variants_see_the_training_images_through_the_evaluation_preprocessing(study):
    variants = study.fixres_experiments(C, init="trained.pt", k_test=96)
    assert set(variants) == {"bn_recal", "head", "full"}
    for exp in variants.values():
        feed, val = exp.train_feed(study.cache), exp.eval_feed(study.cache)
        assert (feed.mode, feed.side) == ("eval", 96) and (val.mode, val.side) == ("eval", 96)
        assert exp.init == "trained.pt" and exp.kind != "train"
        assert set(exp.train_indices) <= set(study.splits["train"].tolist())


def test_fixres_variants_share_their_images_and_differ_in_what_they_train(study):
    v = study.fixres_experiments(C, init="trained.pt", k_test=96)
    assert v["head"].train_indices == v["full"].train_indices and len(v["full"].train_indices) == 16
    assert set(v["bn_recal"].train_indices) < set(v["full"].train_indices) and len(v["bn_recal"].train_indices) == 8
    assert len({exp.eval_indices for exp in v.values()}) == 1
    assert (v["bn_recal"].kind, v["head"].train.trainable, v["full"].train.trainable) == ("bn_recal", "head", "all")
    assert len({exp.key() for exp in v.values()}) == 3


def test_a_fixres_step_is_the_same_experiment_wherever_its_starting_checkpoint_lies(study, checkpoint, tmp_path):
    moved = tmp_path / "elsewhere" / "model.pt"
    moved.parent.mkdir()
    moved.write_bytes(checkpoint.read_bytes())
    here = study.fixres_experiments(C, init=str(checkpoint), k_test=96)["full"]
    there = study.fixres_experiments(C, init=str(moved), k_test=96)["full"]
    assert here.key() == there.key()
    moved.write_bytes(checkpoint.read_bytes() + b"other weights")
    assert study.fixres_experiments(C, init=str(moved), k_test=96)["full"].key() != here.key()


def test_the_default_artifacts_folder_does_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    from effnb.study.context import resolve_artifacts_dir

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)  # e.g. papermill started from another folder
    assert resolve_artifacts_dir(None) == repo / "artifacts"
    assert resolve_artifacts_dir("out") == Path("out")
