"""``effnb predict``: files and folders of any shape, unreadable files, JSON/CSV output and the exit-code rule."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import make_image_folder, run_cli, stripes

from effnb.cli.predict import files_cache, find_image_files
from effnb.data.cache import build_cache
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import Feed
from effnb.train.inference import predict

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHAPES = {"wide.png": (30, 120), "tall.jpg": (200, 50)}  # (h, w); the tall one is larger than the cache side 64


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Cat/ and Dog/ with 4 images each, a wide and a tall image, a corrupt JPEG, a text file and a hidden file."""
    root = make_image_folder(tmp_path_factory.mktemp("photos"), per_class=4, seed=3)
    rng = np.random.default_rng(0)
    for name, (h, w) in SHAPES.items():
        Image.fromarray(stripes(h, w, vertical=True, rng=rng)).save(root / "Dog" / name)
    (root / "Cat" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "Cat" / "notes.txt").write_text("not an image")
    (root / "Cat" / ".hidden.jpg").write_bytes(b"")
    return root


def test_folders_are_searched_recursively_for_images(photos):
    files, missing = find_image_files([photos, photos / "Cat" / "0.jpg", photos / "absent.jpg"])
    names = sorted(p.relative_to(photos).as_posix() for p in files)
    assert names == sorted([f"{c}/{i}.jpg" for c in ("Cat", "Dog") for i in range(4)]
                           + ["Cat/corrupt.jpg", "Dog/tall.jpg", "Dog/wide.png"])
    assert [m.path for m in missing] == [str(photos / "absent.jpg")] and missing[0].error


def test_any_aspect_ratio_is_fitted_then_cropped_to_a_square(photos):
    files = [photos / "Dog" / name for name in SHAPES]
    cache, failed = files_cache(files, side=64, classes=["Cat", "Dog"])
    assert not failed
    assert cache.hw.tolist() == [[16, 64], [64, 16]]  # longer side fitted to the cache side, aspect ratio kept
    (x, _), = Feed(cache, np.arange(2), 40, "eval", 45).batches()
    assert x.shape == (2, 3, 40, 40) and torch.isfinite(x).all()


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(stripes(20, 60, vertical=True, rng=np.random.default_rng(1))).save(path, exif=exif)
    cache, _ = files_cache([path], side=60, classes=["Cat", "Dog"])
    assert cache.hw.tolist() == [[60, 20]]


def test_predict_json_counts_failures_and_matches_the_evaluation_path(checkpoint, photos, capsys, tmp_path):
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(photos), str(tmp_path / "absent"),
                         "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["predicted"], result["failed"]) == (10, 2)
    assert (result["k_test"], result["k_image_test"]) == (40, 45)
    assert {e["path"] for e in result["errors"]} == {str(photos / "Cat" / "corrupt.jpg"), str(tmp_path / "absent")}
    assert "corrupt.jpg" in err and "absent" in err
    # the same probabilities as `effnb evaluate`'s path: the cache, the Feed and the engine's predict
    model, meta = load_checkpoint(checkpoint)
    cache = build_cache(photos, tmp_path / "cache", side=64, min_side=1)
    logits, _ = predict(model, Feed(cache, np.arange(len(cache)), 40, "eval", 45), progress=False)
    expected = {str(photos / p): probs for p, probs in zip(cache.paths, logits.softmax(1).tolist())}
    assert len(expected) == 10
    for row in result["predictions"]:
        probs = expected[row["path"]]
        assert [row["probabilities"][c] for c in meta["classes"]] == pytest.approx(probs, abs=1e-6)
        assert row["probability"] == pytest.approx(max(probs)) and row["class"] == meta["classes"][np.argmax(probs)]


def test_predict_prints_one_line_per_image_and_writes_csv(checkpoint, photos, capsys, tmp_path):
    table = tmp_path / "out.csv"
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(photos / "Dog"),
                         str(photos / "Cat" / "corrupt.jpg"), "--csv", str(table), "--k-test", "48")
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert len(lines) == 6 and all(len(f) == 3 and f[1] in ("Cat", "Dog") and 0.5 <= float(f[2]) <= 1 for f in lines)
    assert "6 image(s) predicted at 48 px (image 54 px) in " in err and "1 could not be read" in err
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 7
    bad = [r for r in rows if r["error"]]
    assert [r["path"] for r in bad] == [str(photos / "Cat" / "corrupt.jpg")] and bad[0]["class"] == ""
    good = [r for r in rows if not r["error"]]
    assert all(float(r["p_Cat"]) + float(r["p_Dog"]) == pytest.approx(1, abs=1e-5) for r in good)
    assert all(float(r["probability"]) == max(float(r["p_Cat"]), float(r["p_Dog"])) for r in good)


def test_exit_code_is_2_only_when_nothing_was_predicted(checkpoint, photos, capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(photos / "Cat" / "corrupt.jpg"),
                       str(tmp_path / "absent.jpg"))
    assert code == 2 and err.strip().splitlines()[-1].startswith("effnb predict: error: no image could be predicted")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(empty))[0] == 2
    assert run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(empty), str(photos / "Cat" / "0.jpg"))[0] == 0


def test_bad_checkpoint_and_unwritable_csv_give_one_line_errors(checkpoint, photos, capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(tmp_path / "none.pt"), str(photos))
    assert code == 2 and "checkpoint not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(photos),
                       "--csv", str(tmp_path / "no" / "such" / "dir.csv"))
    assert code == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1
