"""``effnb evaluate`` on folders and checkpoints the test makes, and its errors for bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic import TINY_SPEC, make_image_folder

from effnb.checkpoint import load_checkpoint, save_checkpoint
from effnb.cli import main
from effnb.data import build_cache
from effnb.engine import Feed, evaluate
from effnb.model import BASELINES, Scaling, build_model
from effnb.scaling import scale

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def lowercase_folder(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("eval"), per_class=12, seed=5,
                             class_names={"Cat": "cat", "Dog": "DOG"})
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_reports_accuracy_loss_count_and_skipped(checkpoint, lowercase_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["images"] == 24 and result["skipped"] == 1
    assert (result["k_test"], result["k_image_test"]) == (40, 45)
    # the same numbers as evaluating the model directly with the checkpoint's preprocessing
    cache = build_cache(lowercase_folder, tmp_path / "direct", side=64)
    model = torch.load(checkpoint, weights_only=True)
    net = build_model(TINY_SPEC)
    net.load_state_dict(model["state_dict"])
    expected = evaluate(net, Feed(cache, np.arange(len(cache)), 40, "eval", 45), progress=False)
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_evaluate_at_another_k_test(checkpoint, lowercase_folder, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder),
                       "--k-test", "64", "--json")
    assert code == 0 and json.loads(out)["k_test"] == 64 and json.loads(out)["k_image_test"] == 72


@pytest.mark.parametrize("content, message", [
    (None, "checkpoint not found"),
    (b"garbage bytes", "cannot read checkpoint"),
    ("other-format", "not an effnb checkpoint"),
    ("v1", "earlier effnb"),
])
def test_bad_checkpoints_give_one_line_errors(content, message, lowercase_folder, capsys, tmp_path):
    path = tmp_path / "bad.pt"
    if content == "other-format":
        torch.save({"weights": torch.zeros(2)}, path)
    elif content == "v1":
        torch.save({"format": "effnb-checkpoint-v1", "spec": TINY_SPEC.to_dict(), "state_dict": {}}, path)
    elif content is not None:
        path.write_bytes(content)
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(path), "--data-dir", str(lowercase_folder))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_classes_that_do_not_match_are_refused(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    root = make_image_folder(tmp_path / "other", per_class=3, class_names={"Cat": "horse", "Dog": "zebra"})
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(root))
    assert code == 2 and "do not match" in err


def test_missing_data_folder_is_refused(checkpoint, tmp_path, capsys):
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err


@pytest.mark.parametrize("bad", ["0", "-3", "big"])
def test_k_test_must_be_a_positive_integer(bad, checkpoint, lowercase_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(lowercase_folder), "--k-test", bad])
    assert exit_info.value.code == 2
    assert "k-test" in capsys.readouterr().err


def test_a_checkpoint_rebuilds_the_scaled_network_and_says_how_it_was_scaled(tmp_path):
    spec = scale(BASELINES["C"], 1.4, 1.05, 1.14, 1)
    torch.manual_seed(0)
    net = build_model(spec)
    path = save_checkpoint(tmp_path / "scaled.pt", net, spec, ["Cat", "Dog"],
                           {"k_train": spec.resolution, "k_test": 90, "k_image_test": 101, "cache_side": 128})
    model, meta = load_checkpoint(path)
    assert model.spec == spec and meta["spec"]["scaling"] == {"base": "C", "alpha": 1.4, "beta": 1.05, "gamma": 1.14,
                                                              "phi": 1}
    assert model.spec.scaling == Scaling("C", 1.4, 1.05, 1.14, 1)
    x = torch.randn(2, 3, spec.resolution, spec.resolution)
    with torch.no_grad():
        assert torch.equal(model(x), net.eval()(x))
