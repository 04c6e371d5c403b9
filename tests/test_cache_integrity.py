"""What the image cache proves: it follows links, sees rewrites that restore the mtime, checks its own files'
hashes, and a full disk is a one-line error."""
import errno
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from effnb.data.cache import META_FILE, build_cache
from effnb.data.errors import DataError
from synthetic import make_image_folder, stripes

SIDE = 32


def _rewrite(path, seed: int) -> None:
    Image.fromarray(stripes(48, 64, True, np.random.default_rng(seed))).save(path, quality=90)


def _build(root, cache_dir, capsys):
    cache = build_cache(root, cache_dir, side=SIDE)
    return cache, capsys.readouterr().out


def test_a_changed_link_target_is_read_again(tmp_path, capsys):
    images = make_image_folder(tmp_path / "real", per_class=4)
    linked = tmp_path / "linked"
    for path in images.rglob("*.jpg"):
        (linked / path.parent.name).mkdir(parents=True, exist_ok=True)
        (linked / path.parent.name / path.name).symlink_to(path)
    first, _ = _build(linked, tmp_path / "cache", capsys)
    before = first.fingerprint
    _rewrite(next(images.rglob("0.jpg")), seed=7)
    second, out = _build(linked, tmp_path / "cache", capsys)
    assert "[reused]" not in out and second.fingerprint != before
    link = next(linked.rglob("1.jpg"))  # pointed elsewhere: another file of the same class
    link.unlink()
    link.symlink_to(next(p for p in images.rglob("2.jpg") if p.parent.name == link.parent.name))
    _, out = _build(linked, tmp_path / "cache", capsys)
    assert "[reused]" not in out


def test_a_rewrite_that_restores_the_mtime_is_seen(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=4)
    _build(root, tmp_path / "cache", capsys)
    path = next(root.rglob("0.jpg"))
    st, data = path.stat(), bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    _, out = _build(root, tmp_path / "cache", capsys)
    assert "[reused]" not in out


def test_tampered_images_are_rebuilt_with_a_warning(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=4)
    first, _ = _build(root, tmp_path / "cache", capsys)
    good = np.array(first.images)
    images_file = next((tmp_path / "cache").glob("images-*.u8"))
    st = images_file.stat()
    with open(images_file, "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(os.urandom(64))
    os.utime(images_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as written
    with pytest.warns(UserWarning, match="does not match its hash"):
        second, out = _build(root, tmp_path / "cache", capsys)
    assert "[reused]" not in out and np.array_equal(np.array(second.images), good)


def test_tampered_labels_are_rebuilt_with_a_warning(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=4)
    first, _ = _build(root, tmp_path / "cache", capsys)
    meta_path = tmp_path / "cache" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["labels"] = [1 - k for k in meta["labels"]]  # still valid JSON, every label wrong
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="does not match its hash"):
        second, _ = _build(root, tmp_path / "cache", capsys)
    assert np.array_equal(second.labels, first.labels)


def test_a_full_disk_is_one_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "images", per_class=4)

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DataError, match="not enough disk space for the image cache"):
        build_cache(root, tmp_path / "cache", side=SIDE)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp") or ".u8" in p.name] == []


def test_an_unchanged_copy_elsewhere_is_decoded_again_but_gives_the_same_fingerprint(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=4)
    first, _ = _build(root, tmp_path / "cache", capsys)
    copy = shutil.copytree(root, tmp_path / "copy")
    second, _ = _build(copy, tmp_path / "cache", capsys)
    assert second.fingerprint == first.fingerprint  # experiments keyed by it are read back, not re-run
