"""Tests for effnb.data (index, decode, cache, splits) on small synthetic image trees."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effnb.data import decode
from effnb.data import index as indexing
from effnb.data.cache import (
    CACHE_ENV,
    META_FILE,
    ImageCache,
    build_cache,
    cache_home,
    load_cache,
)
from effnb.data.errors import DataError
from effnb.data.index import index_images, link_images
from effnb.data.splits import make_splits, subset

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


# --------------------------------------------------------------------------- index_images


def test_index_images(tree: Path) -> None:
    index = index_images(tree)
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
        index_images(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        index_images(tmp_path / "file")
    (tmp_path / "file").unlink()
    with pytest.raises(DataError, match="no class subfolders"):
        index_images(tmp_path)
    _write(tmp_path / "Cat/a.txt", b"x")
    _write(tmp_path / "Dog/b.jpg", b"")
    with pytest.raises(DataError, match=r"\['Cat', 'Dog'\] .* no usable image files \(empty file: 1; not an image"):
        index_images(tmp_path)
    _write(tmp_path / "Cat/c.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    with pytest.raises(DataError, match=r"\['Dog'\] .* no usable image files"):
        index_images(tmp_path)
    (tmp_path / "Dog/b.jpg").unlink()  # an empty folder is not a class
    with pytest.raises(DataError, match="at least 2 class folders"):
        index_images(tmp_path)


# --------------------------------------------------------------------------- build_cache / load_cache


def test_cache_contents_and_geometry(tree: Path, tmp_path: Path) -> None:
    side = 64
    cache = build_cache(tree, tmp_path / "cache", side=side, min_side=32)
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
    first = build_cache(tree, tmp_path / "cache", side=48)

    def fail(path: Path, *args) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode, "_decode", fail)
    second = build_cache(tree, tmp_path / "cache", side=48)
    assert second.paths == first.paths and second.skipped == first.skipped
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.hw, first.hw)
    loaded = load_cache(tmp_path / "cache")
    assert len(loaded) == len(first) and loaded.side == 48


def test_cache_rebuilt_when_interrupted_or_changed(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    build_cache(tree, cache_dir, side=48)
    decoded = []
    real_decode = decode._decode
    monkeypatch.setattr(decode, "_decode", lambda p, *args: decoded.append(p) or real_decode(p, *args))

    (cache_dir / "meta.json").unlink()  # an interrupted build leaves no meta.json
    with pytest.raises(DataError, match="no finished image cache"):
        load_cache(cache_dir)
    assert len(build_cache(tree, cache_dir, side=48)) == len(GOOD)
    assert len(decoded) == len(GOOD) + 2  # + truncated and tiny

    decoded.clear()
    assert build_cache(tree, cache_dir, side=32).images.shape[-1] == 32  # another key rebuilds
    assert decoded


def test_cache_limit_per_class(tree: Path, tmp_path: Path) -> None:
    a = build_cache(tree, tmp_path / "a", side=32, limit_per_class=2, seed=3)
    b = build_cache(tree, tmp_path / "b", side=32, limit_per_class=2, seed=3)
    assert a.paths == b.paths
    assert np.bincount(a.labels).max() <= 2 and set(a.labels) == {0, 1}


def test_load_cache_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no finished image cache"):
        load_cache(tmp_path / "nothing")


# --------------------------------------------------------------------------- splits


LABELS = np.repeat([0, 1], [600, 400])


def test_splits_disjoint_covering_stratified() -> None:
    splits = make_splits(LABELS, seed=1, test_size=100, test2_size=50)
    assert {k: len(v) for k, v in splits.items()} == {"train": 850, "test": 100, "test2": 50}
    merged = np.concatenate(list(splits.values()))
    assert len(np.unique(merged)) == len(LABELS) and merged.min() == 0 and merged.max() == len(LABELS) - 1
    for idx in splits.values():
        assert np.all(np.diff(idx) > 0)
    assert np.bincount(LABELS[splits["test"]]).tolist() == [60, 40]
    assert np.bincount(LABELS[splits["test2"]]).tolist() == [30, 20]


def test_splits_deterministic_by_seed() -> None:
    a, b, c = (make_splits(LABELS, seed=s, test_size=100, test2_size=100) for s in (1, 1, 2))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["test"], c["test"])


def test_splits_scaled_down_on_small_data() -> None:
    labels = np.repeat([0, 1], 50)
    with pytest.warns(UserWarning, match="scaled"):
        splits = make_splits(labels, seed=0)
    assert len(splits["test"]) == len(splits["test2"]) == 20 and len(splits["train"]) == 60


def test_splits_errors() -> None:
    with pytest.raises(DataError, match="missing classes"):
        make_splits(np.array([0, 0, 2, 2] * 10), seed=0, test_size=4, test2_size=4)
    with pytest.raises(DataError, match="every class"):
        make_splits(np.zeros(50, dtype=int), seed=0, test_size=4, test2_size=4)
    with pytest.raises(DataError, match="empty"), pytest.warns(UserWarning):
        make_splits(np.array([0, 1, 0, 1]), seed=0)


def _split_of(splits: dict[str, np.ndarray], n: int) -> np.ndarray:
    where = np.full(n, -1)
    for code, idx in enumerate(splits.values()):
        where[idx] = code
    return where


def test_splits_keep_groups_together_with_sizes_and_label_counts_unchanged() -> None:
    rng = np.random.default_rng(3)
    groups = np.arange(len(LABELS))
    pick = rng.choice(len(LABELS), 90, replace=False)
    groups[pick[:40]] = groups[pick[40:80]]  # 40 pairs, some across the classes
    groups[pick[80:]] = groups[pick[0]]  # and one group of 12
    for seed in range(5):
        plain = make_splits(LABELS, seed, test_size=100, test2_size=50)
        kept = make_splits(LABELS, seed, test_size=100, test2_size=50, groups=groups)
        assert list(kept) == ["train", "test", "test2"]
        where = _split_of(kept, len(LABELS))
        assert (where >= 0).all() and sum(map(len, kept.values())) == len(LABELS)
        assert all(len(np.unique(where[groups == g])) == 1 for g in np.unique(groups))
        for name in plain:
            assert np.bincount(LABELS[kept[name]]).tolist() == np.bincount(LABELS[plain[name]]).tolist()
            assert np.all(np.diff(kept[name]) > 0)
        moved = (where != _split_of(plain, len(LABELS))).sum()
        assert 0 < moved <= 2 * 52  # only group members and as many swap partners move
        again = make_splits(LABELS, seed, test_size=100, test2_size=50, groups=groups)
        assert all(np.array_equal(kept[k], again[k]) for k in kept)


def test_splits_without_copies_are_the_plain_splits() -> None:
    plain = make_splits(LABELS, 4, test_size=100, test2_size=50)
    alone = make_splits(LABELS, 4, test_size=100, test2_size=50, groups=np.arange(len(LABELS)) * 7)
    assert all(np.array_equal(plain[k], alone[k]) for k in plain)


def test_splits_group_errors() -> None:
    labels = np.repeat([0, 1], 20)
    with pytest.raises(DataError, match="one group id per image"):
        make_splits(labels, 0, test_size=4, test2_size=4, groups=np.arange(5))
    with pytest.raises(DataError, match="cannot keep a group of 40"):  # one group of everything
        make_splits(labels, 0, test_size=4, test2_size=4, groups=np.zeros(40, dtype=int))


def test_subset() -> None:
    indices = np.arange(100, 400)
    assert np.array_equal(subset(indices[::-1], None, seed=0), indices)
    a = subset(indices, 30, seed=5)
    assert len(a) == 30 and np.isin(a, indices).all() and np.all(np.diff(a) > 0)
    assert np.array_equal(a, subset(indices, 30, seed=5))
    assert not np.array_equal(a, subset(indices, 30, seed=6))
    labels = (np.arange(400) % 4 == 0).astype(int)  # 25 % ones
    assert np.bincount(labels[subset(indices, 40, seed=0, labels=labels)]).tolist() == [30, 10]


# --------------------------------------------------------------------------- shared data (integration)


def test_index_shared_pet_images() -> None:
    if not SHARED_PET_IMAGES.is_dir():
        pytest.skip(f"shared data set not found at {SHARED_PET_IMAGES}")
    index = index_images(SHARED_PET_IMAGES)
    assert index.classes == ["Cat", "Dog"]
    assert len(index.paths) == 22_998 and index.skipped == []
    assert np.bincount(index.labels).tolist() == [11_499, 11_499]
    assert os.fspath(index.paths[0]).startswith(os.fspath(SHARED_PET_IMAGES))


# --------------------------------------------------------------------------- what is not used is counted


def test_nested_images_are_included_and_odd_entries_counted(tree: Path) -> None:
    _write(tree / "Cat/2019/nested.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    _write(tree / "Dog/.hidden.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    _write(tree / "loose.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    (tree / "Dog/broken.jpg").symlink_to(tree / "nowhere.jpg")
    (tree / "Dog/linked_folder").symlink_to(tree / "Cat", target_is_directory=True)
    index = index_images(tree)
    rel = {p.relative_to(tree).as_posix(): label for p, label in zip(index.paths, index.labels)}
    assert rel["Cat/2019/nested.jpg"] == 0  # labelled by its top-level class folder
    reasons = {p.relative_to(tree).as_posix(): r for p, r in index.skipped}
    assert reasons["Dog/.hidden.jpg"] == "hidden file"
    assert reasons["loose.jpg"] == "not in a class folder"
    assert reasons["Dog/broken.jpg"] == "broken link"
    assert reasons["Dog/linked_folder"] == "link to a folder (not followed)"


def test_unreadable_files_and_folders_are_skipped_not_fatal(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tree / "Cat/locked/x.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    denied = {tree / "Cat/a.jpg", tree / "Cat/locked"}
    real_open, real_scandir = open, os.scandir

    def guarded(opener):
        def wrapper(path, *args, **kwargs):
            if Path(path) in denied:
                raise PermissionError(13, "Permission denied", str(path))
            return opener(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(indexing, "open", guarded(real_open), raising=False)
    monkeypatch.setattr(os, "scandir", guarded(real_scandir))  # what os.walk lists folders with
    reasons = {p.relative_to(tree).as_posix(): r for p, r in index_images(tree).skipped}
    assert reasons["Cat/a.jpg"] == "unreadable (Permission denied)"
    assert reasons["Cat/locked"] == "unreadable folder (Permission denied)"
    denied.add(tree / "Dog")  # a whole class unreadable: an error that names it
    with pytest.raises(DataError, match=r"\['Dog'\] .* no usable image files \(unreadable folder: 1\)"):
        index_images(tree)


def test_a_class_of_undecodable_files_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "Cat/a.jpg", _image_bytes(40, 40, "RGB", "JPEG"))
    _write(tmp_path / "Dog/bad.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"no decodable images of class\(es\) \['Dog'\].*undecodable: 1"):
        build_cache(tmp_path, tmp_path / "cache", side=32, min_side=8)


def _exif_rotated_jpeg(h: int, w: int) -> bytes:
    """A JPEG stored as h x w whose EXIF orientation (6) says: display rotated 90 degrees, i.e. as w x h."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (w, h), COLOUR).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_exif_rotated_jpeg(40, 80))
    image, full = decode._decode(path)
    assert tuple(image.shape) == (3, 80, 40) and full == (80, 40)
    image, full = decode._decode(path, exif_orientation=False)
    assert tuple(image.shape) == (3, 40, 80) and full == (40, 80)
    resized = decode._load_resized(path, side=20, min_side=8, exif_orientation=True)
    assert tuple(resized.shape) == (3, 20, 10)
    assert decode._load_resized(path, side=20, min_side=60, exif_orientation=True) == "too small (80x40 < 60)"


def test_sixteen_bit_grey_keeps_its_top_bits(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((40, 50), 40_000, dtype=np.uint16)).save(path)
    image, full = decode._decode(path)
    assert tuple(image.shape) == (3, 40, 50) and full == (40, 50)
    assert image.unique().tolist() == [40_000 >> 8]  # scaled to 8 bits, not clipped at 255


def test_large_jpeg_is_decoded_at_full_size_then_resized(tmp_path: Path) -> None:
    yy, xx = np.meshgrid(np.linspace(0, 1, 400), np.linspace(0, 1, 100), indexing="ij")
    smooth = np.stack([255 * yy, 255 * xx, 127 + 100 * np.sin(6 * yy)], axis=-1).round().astype(np.uint8)
    path = tmp_path / "tall.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    image, full = decode._decode(path)
    assert full == (400, 100) and tuple(image.shape) == (3, 400, 100)
    resized = decode._load_resized(path, side=32, min_side=90, exif_orientation=True)
    assert tuple(resized.shape) == (3, 32, 8)
    reference = np.asarray(Image.fromarray(smooth).resize((8, 32), Image.Resampling.BOX), dtype=int)
    assert np.abs(resized.permute(1, 2, 0).numpy().astype(int) - reference).mean() < 4


# --------------------------------------------------------------------------- the cache is never stale


def _rebuilt(tree: Path, cache_dir: Path, first: ImageCache) -> ImageCache:
    second = build_cache(tree, cache_dir, side=48)
    assert second.fingerprint != first.fingerprint
    return second


def test_cache_rebuilt_when_a_file_changes_in_place(tree: Path, tmp_path: Path) -> None:
    first = build_cache(tree, tmp_path / "cache", side=48)
    path = tree / "Cat/a.jpg"
    stat = path.stat()
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (10, 220, 30)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # even 1 ns later, whatever the size
    second = _rebuilt(tree, tmp_path / "cache", first)
    i = second.paths.index("Cat/a.jpg")
    assert np.abs(second.images[i, :, 10, 10].astype(int) - (10, 220, 30)).max() <= 8


def test_cache_rebuilt_when_a_file_moves_to_another_class(tree: Path, tmp_path: Path) -> None:
    first = build_cache(tree, tmp_path / "cache", side=48)
    os.replace(tree / "Cat/a.jpg", tree / "Dog/a.jpg")
    second = _rebuilt(tree, tmp_path / "cache", first)
    assert second.labels[second.paths.index("Dog/a.jpg")] == second.classes.index("Dog")
    assert "Cat/a.jpg" not in second.paths and len(second) == len(first)


def test_cache_rebuilt_when_a_file_is_deleted_and_another_added(tree: Path, tmp_path: Path) -> None:
    first = build_cache(tree, tmp_path / "cache", side=48)
    (tree / "Dog/e.jpg").unlink()
    _write(tree / "Dog/new.jpg", _image_bytes(*GOOD["Dog/e.jpg"]))  # same count, same bytes, another name
    second = _rebuilt(tree, tmp_path / "cache", first)
    assert "Dog/new.jpg" in second.paths and "Dog/e.jpg" not in second.paths


def test_fingerprint_follows_content_not_timestamps(tree: Path, tmp_path: Path) -> None:
    first = build_cache(tree, tmp_path / "cache", side=48)
    for path in tree.rglob("*.jpg"):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = build_cache(tree, tmp_path / "cache", side=48)  # rebuilt: the listing changed
    assert second.fingerprint == first.fingerprint  # the pixels did not: experiments stay valid


@pytest.mark.parametrize("damage", ["truncate images", "overwrite images", "garbage meta", "meta not an object",
                                    "meta field missing", "images file gone"])
def test_damaged_cache_is_rebuilt_with_a_warning(damage: str, tree: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    first = build_cache(tree, cache_dir, side=48)
    images = Path(first.images.filename)
    meta_path = cache_dir / META_FILE
    del first
    if damage == "truncate images":
        os.truncate(images, images.stat().st_size // 2)
    elif damage == "overwrite images":  # same size, new bytes: the modification time gives it away
        with open(images, "r+b") as f:
            f.write(b"\x00" * 100)
    elif damage == "garbage meta":
        meta_path.write_text('{"key": ')
    elif damage == "meta not an object":
        meta_path.write_text("[1, 2]")
    elif damage == "meta field missing":
        meta = json.loads(meta_path.read_text())
        del meta["hw"]
        meta_path.write_text(json.dumps(meta))
    else:
        images.unlink()
    with pytest.raises(DataError, match="damaged image cache"):
        load_cache(cache_dir)
    with pytest.warns(UserWarning, match="damaged image cache.*rebuilding"):
        second = build_cache(tree, cache_dir, side=48)
    assert len(second) == len(GOOD)
    assert sorted(p.name for p in cache_dir.glob("images*.u8")) == [Path(second.images.filename).name]


def test_interrupted_build_leaves_no_temp_files(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    dead = cache_dir / ".images.u8.999999999.0123abcd.tmp"  # from a process killed mid-build
    dead.write_bytes(b"partial")

    def interrupt(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(decode, "_load_resized", interrupt)
        with pytest.raises(KeyboardInterrupt):
            build_cache(tree, cache_dir, side=48)
    assert not dead.exists()
    assert sorted(p.name for p in cache_dir.iterdir()) == [".lock"]  # no temp file of its own either
    build_cache(tree, cache_dir, side=48)
    assert not list(cache_dir.glob("*.tmp"))


def test_cache_files_get_the_usual_permissions(tree: Path, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        cache = build_cache(tree, tmp_path / "cache", side=48)
    finally:
        os.umask(old)
    for path in (Path(cache.images.filename), tmp_path / "cache" / META_FILE):
        assert path.stat().st_mode & 0o777 == 0o640


def test_cache_home_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "effnb"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_home() == tmp_path / "mine"


# --------------------------------------------------------------------------- export targets


def test_link_images_into_a_new_or_empty_folder_only(tree: Path, tmp_path: Path) -> None:
    rel = ["Cat/a.jpg", "Dog/e.jpg"]
    target = link_images(tree, rel, tmp_path / "new" / "split")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.jpg")) == rel
    assert (target / "Cat/a.jpg").resolve() == (tree / "Cat/a.jpg").resolve()
    (tmp_path / "empty").mkdir()
    link_images(tree, rel, tmp_path / "empty")
    with pytest.raises(DataError, match="not empty"):
        link_images(tree, rel, target)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        link_images(tree, rel, tmp_path / "file")
    assert not list(tmp_path.glob(".*.tmp"))
