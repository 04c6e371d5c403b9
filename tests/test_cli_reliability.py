"""The CLI's reliability rules: no output over an input, every unreadable path counted, exit 2 for bad input, one
line per image, oversized images skipped undecoded, and flags checked before the images are decoded."""
from __future__ import annotations

import csv
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import make_image_folder, run_cli, stripes

import effnb.cli.export as onnx_export
from effnb.cli.paths import escape_path, refuse_overlap
from effnb.cli.predict import find_image_files
from effnb.data import decode
from effnb.data.cache import build_cache
from effnb.study import context

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    """Cat/ and Dog/ with 3 images each, and a sub-folder Dog/more/ with 2 more."""
    root = make_image_folder(tmp_path_factory.mktemp("pets"), per_class=3, seed=5)
    make_image_folder(root / "Dog" / "more", per_class=1, seed=6)
    return root


@pytest.fixture
def no_decoding(monkeypatch) -> list:
    """Records every image-cache build that the command under test starts (and refuses to run it)."""
    calls = []

    def build(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the images were decoded")
    monkeypatch.setattr(context, "build_cache", build)
    return calls


def one_error_line(err: str, *needles: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("effnb ") and all(n in lines[0] for n in needles)


# 1. an output that would destroy an input is refused before any work

def test_refuse_overlap_compares_resolved_paths(tmp_path):
    data = tmp_path / "data"
    (data / "Cat").mkdir(parents=True)
    (data / "Cat" / "a.jpg").write_bytes(b"x")
    os.link(data / "Cat" / "a.jpg", tmp_path / "hard.jpg")
    for output, relation in [(data / "Cat" / ".." / "Cat" / "a.jpg", "is"), (tmp_path / "hard.jpg", "is"),
                             (data / "Cat" / "new", "lies inside"), (tmp_path, "contains")]:
        with pytest.raises(ValueError, match=f"--out .* {relation} the input"):
            refuse_overlap(output, [None, data / "Cat" / "a.jpg", data], "--out")
    refuse_overlap(tmp_path / "elsewhere", [data, None], "--out")
    refuse_overlap(data / "beside.onnx", [data], "--out", inside=False)  # beside the inputs, allowed when asked


def test_predict_refuses_a_csv_over_an_input(checkpoint, pets, capsys, tmp_path):
    image = tmp_path / "photo.jpg"
    image.write_bytes((pets / "Cat" / "0.jpg").read_bytes())
    before = image.read_bytes()
    for csv_path, inputs in [(image, [str(image)]), (pets / "Dog" / "out.csv", [str(pets)]),
                             (checkpoint, [str(image)])]:
        code, out, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), *inputs, "--csv", str(csv_path))
        assert code == 2 and not out and one_error_line(err, "--csv", str(csv_path))
    assert image.read_bytes() == before and not (pets / "Dog" / "out.csv").exists() and checkpoint.stat().st_size


def test_export_refuses_the_checkpoint_as_its_output(checkpoint, pets, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **k: pytest.fail("exported"))
    before = checkpoint.read_bytes()
    for target in (checkpoint, pets / "Cat" / "1.jpg"):
        code, _, err = run_cli(capsys, "export", "--checkpoint", str(checkpoint), "--onnx", str(target),
                               "--images", str(pets))
        assert code == 2 and one_error_line(err, "--onnx", str(target), "is the input")
    assert checkpoint.read_bytes() == before


def test_export_split_refuses_a_target_in_or_around_the_data(pets, capsys, tmp_path, no_decoding):
    for target in (pets, pets / "Cat" / "split", pets / "new", pets.parent):
        code, _, err = run_cli(capsys, "export-split", "--profile", "smoke", "--data-dir", str(pets),
                               "--artifacts-dir", str(tmp_path / "art"), "--to", str(target))
        assert code == 2 and one_error_line(err, "--to", str(target)), err
    assert not no_decoding and not (pets / "new").exists() and not (pets / "Cat" / "split").exists()


# 2. an unreadable sub-folder is counted

def test_a_folder_that_cannot_be_listed_is_a_counted_failure(pets, monkeypatch):
    real = os.scandir
    locked = pets / "Dog" / "more"

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)  # os.walk lists each folder with os.scandir
    files, failed = find_image_files([pets])
    assert len(files) == 6 and not any(locked in f.parents for f in files)
    assert [(f.path, f.error) for f in failed] == [(str(locked), "unreadable folder (Permission denied)")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads a chmod 000 folder anyway: the PermissionError stand-in above covers it")
def test_predict_counts_a_chmod_000_sub_folder(checkpoint, capsys, tmp_path):
    root = make_image_folder(tmp_path / "pets", per_class=2)
    locked = root / "Dog" / "locked"
    make_image_folder(locked, per_class=1)
    locked.chmod(0)
    try:
        code, _, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(root))
    finally:
        locked.chmod(0o755)
    assert code == 0 and "4 image(s) predicted" in err and "1 could not be read" in err and str(locked) in err


# 3. exit codes and one line per image

def test_nothing_predicted_is_exit_2(checkpoint, capsys, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(tmp_path / "broken.jpg"))
    assert code == 2 and not out and err.strip().splitlines()[-1].startswith("effnb predict: error: no image")


def test_a_newline_in_a_file_name_does_not_split_the_line(checkpoint, capsys, tmp_path):
    (tmp_path / "in").mkdir()
    odd = tmp_path / "in" / "two\nlines\tand\\slash.png"
    Image.fromarray(stripes(40, 40, vertical=True, rng=np.random.default_rng(0))).save(odd)
    table = tmp_path / "out.csv"
    code, out, _ = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(odd.parent), "--csv", str(table))
    assert code == 0
    (line,) = out.splitlines()
    path, label, _ = line.split("\t")
    assert path == str(odd.parent) + "/two\\nlines\\tand\\\\slash.png" and label in ("Cat", "Dog")
    (row,) = csv.DictReader(table.open(newline=""))
    assert row["path"] == str(odd)  # the csv module quotes the field: read back as it is


def test_escape_path_keeps_printable_text_and_escapes_the_rest():
    assert escape_path("Chat_é/ok.jpg") == "Chat_é/ok.jpg"
    assert escape_path("a\rb\x1bc\u2028d") == "a\\rb\\x1bc\\u2028d"
    assert escape_path(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"  # a name that is not UTF-8


# 4. images too large to decode are skipped from their header

def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (its pixel data is that of a 1 x 1 image)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_a_decompression_bomb_is_skipped_from_its_header(tmp_path, recwarn):
    bomb = _png_header_only(tmp_path / "bomb.png", 30000, 30000)
    start = time.perf_counter()
    (reason,) = decode.decode_resized([bomb], 64)
    assert reason == f"too large (30000 x 30000 pixels, limit {decode.MAX_PIXELS:,})"
    assert time.perf_counter() - start < 2 and not [w for w in recwarn if "decompression" in str(w.message).lower()]


def test_a_real_large_image_is_refused_by_the_limit_and_counted(tmp_path, monkeypatch, checkpoint, capsys):
    root = make_image_folder(tmp_path / "pets", per_class=2)
    Image.fromarray(stripes(100, 90, vertical=False, rng=np.random.default_rng(1))).save(root / "Cat" / "big.png")
    monkeypatch.setattr(decode, "MAX_PIXELS", 5000)  # the others have 3,072
    cache = build_cache(root, tmp_path / "cache", side=64, min_side=16)
    assert dict(cache.skipped) == {"Cat/big.png": "too large (90 x 100 pixels, limit 5,000)"} and len(cache) == 4
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(root))
    assert code == 0 and "too large (90 x 100 pixels" in err and "1 could not be read" in err


# 5. flags are checked before long work

@pytest.mark.parametrize("target, needle", [("folder", "is a folder"), ("unwritable", "is not writable"),
                                            ("no parent", "does not exist")])
def test_export_target_problems_surface_before_the_export(target, needle, checkpoint, pets, capsys, tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **k: pytest.fail("exported"))
    out = {"folder": tmp_path, "unwritable": tmp_path / "ro" / "m.onnx", "no parent": tmp_path / "no" / "m.onnx"}[target]
    if target == "unwritable":
        out.parent.mkdir()
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != out.parent and real(p, mode))  # root writes all
    code, _, err = run_cli(capsys, "export", "--checkpoint", str(checkpoint), "--onnx", str(out), "--images", str(pets))
    assert code == 2 and one_error_line(err, "--onnx", str(out), needle) and ".tmp" not in err


@pytest.mark.parametrize("argv, needle", [
    (["ablate", "--device", "foo"], "unknown device 'foo'"),
    (["ablate", "--only", "nosuchvariant"], "unknown variant(s) nosuchvariant"),
    (["ablate", "--phi", "--only", "onecycle"], "unknown variant(s) onecycle"),
    (["bench", "--checkpoint", "/nope.pt"], "checkpoint not found: /nope.pt"),
])
def test_bad_flags_fail_before_the_images_are_decoded(argv, needle, pets, capsys, tmp_path, no_decoding):
    code, _, err = run_cli(capsys, *argv, "--profile", "smoke", "--data-dir", str(pets),
                             "--artifacts-dir", str(tmp_path / "art"))
    assert code == 2 and one_error_line(err, needle) and not no_decoding
