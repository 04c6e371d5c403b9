"""``effnb export``: ONNX round trip of a tiny model with its preprocessing metadata, and its refusals."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import numpy as np
import onnx
import pytest
import torch

import effnb.cli.export as onnx_export
from effnb.cli.commands import main
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import Feed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def exported(checkpoint, image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = main(["export", "--checkpoint", str(checkpoint), "--onnx", str(out), "--images", str(image_folder),
                     "--verify-images", "16", "--repeats", "1", "--json"])
    return code, out, json.loads(stdout.getvalue())


def test_export_round_trip_matches_pytorch(exported, checkpoint, small_cache):
    code, out, report = exported
    assert code == 0 and out.is_file()
    assert report["verification"]["ok"] and report["verification"]["images"] == 16
    assert report["verification"]["max_prob_diff"] <= 1e-4
    assert set(report["speed_img_per_s"]) == {"preprocessing alone", "PyTorch (BN folded, channels-last)", "ONNX Runtime"}
    assert all(rate > 0 for rate in report["speed_img_per_s"].values())
    # the file alone, on other images and another batch size: same classes and probabilities as the checkpoint
    model, _ = load_checkpoint(checkpoint)
    (x, _), = Feed(small_cache, np.arange(5), 40, "eval", 45, batch_size=5).batches()
    logits, probs = onnx_export.ort_session(out).run(None, {"images": x.contiguous().numpy()})
    with torch.inference_mode():
        expected = model(x.contiguous())
    assert logits.shape == (5, 2)
    np.testing.assert_allclose(probs, expected.softmax(1).numpy(), atol=1e-4)
    assert (probs.argmax(1) == expected.argmax(1).numpy()).all()


def test_export_prints_both_speeds_side_by_side(exported, checkpoint, monkeypatch, capsys):
    _, out, report = exported
    monkeypatch.setattr(onnx_export, "export_checkpoint", lambda *args: report)
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(out), "--images", "x"]) == 0
    text = capsys.readouterr().out
    assert "predictions equal" in text and "onnx.checker passed" in text
    speeds = [line.split() for line in text.splitlines() if line.endswith("img/s")]
    assert [s[0] for s in speeds] == ["preprocessing", "PyTorch", "ONNX"] and all(float(s[-2]) > 0 for s in speeds)


def test_export_carries_the_preprocessing_facts(exported):
    _, out, _ = exported
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["effnb.classes"] == ["Cat", "Dog"]
    assert (meta["effnb.k_test"], meta["effnb.k_image_test"], meta["effnb.cache_side"]) == (40, 45, 64)
    assert meta["effnb.mean"] == pytest.approx([0.485, 0.456, 0.406]) and len(meta["effnb.std"]) == 3
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, 40, 40] and dims[0].dim_param  # the batch size is free


def test_a_disagreeing_model_is_detected_and_not_written(checkpoint, image_folder, small_cache, tmp_path, monkeypatch,
                                                         capsys):
    model, _ = load_checkpoint(checkpoint)
    onnx_export.export_onnx(model, tmp_path / "a.onnx", 40, {})
    with torch.no_grad():
        model.classifier.bias += torch.tensor([1.0, -1.0])
    (x, _), = Feed(small_cache, np.arange(8), 40, "eval", 45, batch_size=8).batches()
    check = onnx_export.compare_with_pytorch(onnx_export.ort_session(tmp_path / "a.onnx"), model, x)
    assert not check["ok"] and check["max_prob_diff"] > 1e-4

    monkeypatch.setattr(onnx_export, "compare_with_pytorch", lambda *a, **k: {**check, "atol": 1e-4})
    out = tmp_path / "b.onnx"
    code = main(["export", "--checkpoint", str(checkpoint), "--onnx", str(out), "--images", str(image_folder),
                 "--verify-images", "8", "--repeats", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "disagrees with PyTorch" in err[-1] and not out.exists() and not list(tmp_path.glob(".b*"))


@pytest.mark.parametrize("case, message", [
    ("missing extra", "pip install -e '.[export]'"),
    ("no images given", "give --images PATH"),
    ("no readable image", "no readable image"),
])
def test_refusals_are_one_line_errors(case, message, checkpoint, tmp_path, monkeypatch, capsys):
    argv = ["export", "--checkpoint", str(checkpoint), "--onnx", str(tmp_path / "x.onnx")]
    monkeypatch.delenv("EFFNB_DATA_DIR", raising=False)
    if case == "missing extra":
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
        argv += ["--images", str(tmp_path)]
    elif case == "no readable image":
        (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff nothing")
        argv += ["--images", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "x.onnx").exists()
