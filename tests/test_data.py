"""Tests for effnb.data on small synthetic image trees."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import effnb.data as data
from effnb.data import DataError

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec; they still work
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

SHARED_PET_IMAGES = Path(__file__).resolve().parents[1].parent / "shared/data/PetImages"

# name -> (height, width, colour mode, format); all valid images
GOOD = {
    "Cat/a.jpg": (60, 80, "RGB", "JPEG"),
    "Cat/gray.jpg": (50, 50, "L", "JPEG"),
    "Cat/cmyk.jpg": (40, 70, "CMYK", "JPEG"),
    "Cat/png_in_disguise.jpg": (70, 35, "RGB", "PNG"),
    "Dog/e.jpg": (100, 50, "RGB", "JPEG"),
    "Dog/f.png": (45, 45, "RGB", "PNG"),
    "Dog/g.jpeg": (90, 120, "RGB", "JPEG"),
}
COLOUR = (200, 40, 90)


def _image_bytes(h: int, w: int, mode: str, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), COLOUR).convert(mode).save(buf, fmt)
    return buf.getvalue()


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A PetImages-like tree with good images and every kind of bad file."""
    root = tmp_path / "PetImages"
    for name, spec in GOOD.items():
        _write(root / name, _image_bytes(*spec))
    _write(root / "Cat/empty.jpg", b"")
    _write(root / "Cat/text.jpg", b"this is not an image")
    _write(root / "Dog/Thumbs.db", b"junk")
    _write(root / "Dog/truncated.jpg", _image_bytes(64, 64, "RGB", "JPEG")[:200])
    _write(root / "Dog/tiny.jpg", _image_bytes(20, 40, "RGB", "JPEG"))
    return root


# --------------------------------------------------------------------------- resolve_data_dir


def test_resolve_explicit_parent_and_env(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data.resolve_data_dir(tree) == tree
    assert data.resolve_data_dir(tree.parent) == tree
    monkeypatch.setenv(data.DATA_ENV, str(tree.parent))
    assert data.resolve_data_dir(None) == tree
    assert data.resolve_data_dir(tree / "Cat") == tree / "Cat"  # explicit argument wins over the env


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        data.resolve_data_dir(tmp_path / "nowhere")


def test_resolve_finds_the_shared_folder_from_any_working_folder(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tree)
    monkeypatch.chdir(tmp_path)  # a notebook's kernel runs in notebooks/, make in the repository root
    assert data.resolve_data_dir(None) == tree


def test_resolve_downloads_when_nothing_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import effnb.download

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tmp_path / "no-shared")
    calls = []
    monkeypatch.setattr(effnb.download, "fetch_cats_vs_dogs", lambda d: calls.append(d) or Path(d) / "PetImages")
    assert data.resolve_data_dir(None, tmp_path) == tmp_path / "PetImages"
    assert calls == [tmp_path]


def test_resolve_names_every_place_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import effnb.download

    def offline(_):
        raise OSError("network unreachable")

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tmp_path / "no-shared")
    monkeypatch.setattr(effnb.download, "fetch_cats_vs_dogs", offline)
    with pytest.raises(DataError) as err:
        data.resolve_data_dir(None, tmp_path / "downloads")
    message = str(err.value)
    assert data.DATA_ENV in message and str(tmp_path / "no-shared") in message
    assert str(tmp_path / "downloads") in message and "network unreachable" in message
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "typo"))
    with pytest.raises(DataError, match=f"typo.*{data.DATA_ENV}"):
        data.resolve_data_dir(None)


# --------------------------------------------------------------------------- index_images


def test_index_images(tree: Path) -> None:
    index = data.index_images(tree)
    assert index.classes == ["Cat", "Dog"]
    rel = [p.relative_to(tree).as_posix() for p in index.paths]
    # cheap checks keep the truncated and the tiny JPEG: they fail later, at decode time
    assert rel == sorted(rel)
    assert set(rel) == set(GOOD) | {"Dog/truncated.jpg", "Dog/tiny.jpg"}
    assert index.labels == [0 if r.startswith("Cat/") else 1 for r in rel]
    reasons = {p.relative_to(tree).as_posix(): r for p, r in index.skipped}
    assert reasons == {
        "Cat/empty.jpg": "empty file",
        "Cat/text.jpg": "not an image (unknown header)",
        "Dog/Thumbs.db": "not an image extension (.db)",
    }


def test_index_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        data.index_images(tmp_path / "missing")
    with pytest.raises(DataError, match="no class subfolders"):
        data.index_images(tmp_path)
    _write(tmp_path / "Cat/a.txt", b"x")
    _write(tmp_path / "Dog/b.jpg", b"")
    with pytest.raises(DataError, match=r"\['Cat', 'Dog'\] .* no usable image files \(empty file: 1; not an image"):
        data.index_images(tmp_path)
    _write(tmp_path / "Cat/c.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    with pytest.raises(DataError, match=r"\['Dog'\] .* no usable image files"):
        data.index_images(tmp_path)
    (tmp_path / "Dog/b.jpg").unlink()  # an empty folder is not a class
    with pytest.raises(DataError, match="at least 2 class folders"):
        data.index_images(tmp_path)


# --------------------------------------------------------------------------- build_cache / load_cache


def test_cache_contents_and_geometry(tree: Path, tmp_path: Path) -> None:
    side = 64
    cache = data.build_cache(tree, tmp_path / "cache", side=side, min_side=32)
    assert cache.images.shape == (len(GOOD), 3, side, side) and cache.images.dtype == np.uint8
    assert sorted(cache.paths) == sorted(GOOD) and cache.classes == ["Cat", "Dog"]
    reasons = dict(cache.skipped)
    assert reasons["Dog/tiny.jpg"] == "too small (20x40 < 32)"
    assert reasons["Dog/truncated.jpg"].startswith("undecodable")
    assert {"Cat/empty.jpg", "Cat/text.jpg", "Dog/Thumbs.db"} <= set(reasons)
    for i, rel in enumerate(cache.paths):
        h0, w0, mode, _ = GOOD[rel]
        h, w = cache.hw[i]
        assert max(h, w) == side
        assert abs(h - h0 * side / max(h0, w0)) <= 1 and abs(w - w0 * side / max(h0, w0)) <= 1
        assert cache.labels[i] == (0 if rel.startswith("Cat/") else 1)
        image = cache.images[i].astype(int)
        assert not image[:, h:, :].any() and not image[:, :, w:].any()  # zero canvas outside hw
        centre = image[:, h // 2, w // 2]
        if mode == "RGB":
            assert np.abs(centre - COLOUR).max() <= 8
        else:  # grey and CMYK files were decoded to 3 channels
            assert centre.min() > 0
        if mode == "L":
            assert centre[0] == centre[1] == centre[2]


def test_cache_reused_without_decoding(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = data.build_cache(tree, tmp_path / "cache", side=48)

    def fail(path: Path, *args) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "_decode", fail)
    second = data.build_cache(tree, tmp_path / "cache", side=48)
    assert second.paths == first.paths and second.skipped == first.skipped
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.hw, first.hw)
    loaded = data.load_cache(tmp_path / "cache")
    assert len(loaded) == len(first) and loaded.side == 48


def test_cache_rebuilt_when_interrupted_or_changed(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    data.build_cache(tree, cache_dir, side=48)
    decoded = []
    real_decode = data._decode
    monkeypatch.setattr(data, "_decode", lambda p, *args: decoded.append(p) or real_decode(p, *args))

    (cache_dir / "meta.json").unlink()  # an interrupted build leaves no meta.json
    with pytest.raises(DataError, match="no finished image cache"):
        data.load_cache(cache_dir)
    assert len(data.build_cache(tree, cache_dir, side=48)) == len(GOOD)
    assert len(decoded) == len(GOOD) + 2  # + truncated and tiny

    decoded.clear()
    assert data.build_cache(tree, cache_dir, side=32).images.shape[-1] == 32  # another key rebuilds
    assert decoded


def test_cache_limit_per_class(tree: Path, tmp_path: Path) -> None:
    a = data.build_cache(tree, tmp_path / "a", side=32, limit_per_class=2, seed=3)
    b = data.build_cache(tree, tmp_path / "b", side=32, limit_per_class=2, seed=3)
    assert a.paths == b.paths
    assert np.bincount(a.labels).max() <= 2 and set(a.labels) == {0, 1}


def test_load_cache_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no finished image cache"):
        data.load_cache(tmp_path / "nothing")


# --------------------------------------------------------------------------- splits


LABELS = np.repeat([0, 1], [600, 400])


def test_splits_disjoint_covering_stratified() -> None:
    splits = data.make_splits(LABELS, seed=1, test_size=100, test2_size=50)
    assert {k: len(v) for k, v in splits.items()} == {"train": 850, "test": 100, "test2": 50}
    merged = np.concatenate(list(splits.values()))
    assert len(np.unique(merged)) == len(LABELS) and merged.min() == 0 and merged.max() == len(LABELS) - 1
    for idx in splits.values():
        assert np.all(np.diff(idx) > 0)
    assert np.bincount(LABELS[splits["test"]]).tolist() == [60, 40]
    assert np.bincount(LABELS[splits["test2"]]).tolist() == [30, 20]


def test_splits_deterministic_by_seed() -> None:
    a, b, c = (data.make_splits(LABELS, seed=s, test_size=100, test2_size=100) for s in (1, 1, 2))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["test"], c["test"])


def test_splits_scaled_down_on_small_data() -> None:
    labels = np.repeat([0, 1], 50)
    with pytest.warns(UserWarning, match="scaled"):
        splits = data.make_splits(labels, seed=0)
    assert len(splits["test"]) == len(splits["test2"]) == 20 and len(splits["train"]) == 60


def test_splits_errors() -> None:
    with pytest.raises(DataError, match="missing classes"):
        data.make_splits(np.array([0, 0, 2, 2] * 10), seed=0, test_size=4, test2_size=4)
    with pytest.raises(DataError, match="every class"):
        data.make_splits(np.zeros(50, dtype=int), seed=0, test_size=4, test2_size=4)
    with pytest.raises(DataError, match="empty"), pytest.warns(UserWarning):
        data.make_splits(np.array([0, 1, 0, 1]), seed=0)


def test_subset() -> None:
    indices = np.arange(100, 400)
    assert np.array_equal(data.subset(indices[::-1], None, seed=0), indices)
    a = data.subset(indices, 30, seed=5)
    assert len(a) == 30 and np.isin(a, indices).all() and np.all(np.diff(a) > 0)
    assert np.array_equal(a, data.subset(indices, 30, seed=5))
    assert not np.array_equal(a, data.subset(indices, 30, seed=6))
    labels = (np.arange(400) % 4 == 0).astype(int)  # 25 % ones
    assert np.bincount(labels[data.subset(indices, 40, seed=0, labels=labels)]).tolist() == [30, 10]


# --------------------------------------------------------------------------- shared data (integration)


def test_index_shared_pet_images() -> None:
    if not SHARED_PET_IMAGES.is_dir():
        pytest.skip(f"shared data set not found at {SHARED_PET_IMAGES}")
    index = data.index_images(SHARED_PET_IMAGES)
    assert index.classes == ["Cat", "Dog"]
    assert len(index.paths) == 22_998 and index.skipped == []
    assert np.bincount(index.labels).tolist() == [11_499, 11_499]
    assert os.fspath(index.paths[0]).startswith(os.fspath(SHARED_PET_IMAGES))
