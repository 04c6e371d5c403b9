"""Finding images in a class-per-folder tree, a decoded-image cache, and deterministic stratified splits."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as TF

from .progress import tqdm

DATA_ENV = "EFFNB_DATA_DIR"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEFAULT_DOWNLOAD_DIR = Path.home() / ".cache" / "effnb"
# the images shared beside the repository (resolved from this file, so the notebooks' working folder does not matter)
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "PetImages"
IMAGES_FILE = "images.u8"
META_FILE = "meta.json"
_DECODE_WORKERS = 2


class DataError(ValueError):
    """Bad or missing input data (one-line message)."""


def resolve_data_dir(
    data_dir: str | os.PathLike | None, download_dir: str | os.PathLike | None = None
) -> Path:
    """Return the class-folder root, the same way for the command line, ``make`` and the notebooks.

    In order: ``data_dir`` when given; else ``$EFFNB_DATA_DIR``; else the shared folder beside the repository
    (``../shared/data/PetImages`` from the repository root, whatever the working folder); else the real archive,
    downloaded into ``download_dir``. A folder holding ``PetImages/`` resolves to that subfolder. When nothing is
    found the error names every place tried.
    """
    explicit = data_dir or os.environ.get(DATA_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser().resolve()
        if not path.is_dir():
            source = "" if data_dir else f" (from ${DATA_ENV})"
            raise DataError(f"data folder not found: {path}{source}")
        return path / "PetImages" if (path / "PetImages").is_dir() else path
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    from effnb.download import fetch_cats_vs_dogs  # lazy: download imports this module

    target = Path(download_dir or DEFAULT_DOWNLOAD_DIR)
    try:
        return fetch_cats_vs_dogs(target)
    except (OSError, DataError) as exc:  # urllib's URLError is an OSError
        raise DataError(f"no images found: no data_dir given, ${DATA_ENV} not set, {SHARED_DATA_DIR} missing, "
                        f"and downloading into {target} failed ({exc})") from None


# --------------------------------------------------------------------------- indexing


@dataclass
class ImageIndex:
    """Image files found under a root, with integer labels into ``classes``, and the files skipped."""

    paths: list[Path]
    labels: list[int]
    classes: list[str]
    skipped: list[tuple[Path, str]]


def _has_image_magic(head: bytes) -> bool:
    return (
        head.startswith(b"\xff\xd8\xff")  # JPEG
        or head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"BM")
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
    )


def _skip_reason(path: Path) -> str | None:
    """Why ``path`` can't be an image, by cheap checks (extension, size, header), or None."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image extension ({path.suffix or 'none'})"
    if path.stat().st_size == 0:
        return "empty file"
    with open(path, "rb") as f:
        if not _has_image_magic(f.read(12)):
            return "not an image (unknown header)"
    return None


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def index_images(root: str | os.PathLike) -> ImageIndex:
    """Index a class-per-folder tree (``root/<class>/<file>``) in sorted order, skipping non-image files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and _visible(d))
    if not class_dirs:
        raise DataError(f"no class subfolders in {root}")
    found: dict[str, list[Path]] = {}
    skipped: list[tuple[Path, str]] = []
    for class_dir in class_dirs:
        for path in sorted(p for p in class_dir.iterdir() if p.is_file() and _visible(p)):
            reason = _skip_reason(path)
            if reason is None:
                found.setdefault(class_dir.name, []).append(path)
            else:
                skipped.append((path, reason))
    if not found:
        raise DataError(f"no images in the class subfolders of {root}")
    if len(found) < 2:
        raise DataError(f"need at least 2 classes with images in {root}, found {sorted(found)}")
    classes = sorted(found)
    paths = [p for c in classes for p in found[c]]
    labels = [k for k, c in enumerate(classes) for _ in found[c]]
    return ImageIndex(paths=paths, labels=labels, classes=classes, skipped=skipped)


# --------------------------------------------------------------------------- cache


@dataclass
class ImageCache:
    """Decoded images: image ``i`` is ``images[i, :, :hw[i, 0], :hw[i, 1]]`` (top-left of an S x S zero canvas)."""

    images: np.ndarray
    hw: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]]
    side: int

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def in_memory(cls, images: Sequence[torch.Tensor], paths: Sequence[str], side: int, classes: Sequence[str],
                  labels: Sequence[int] | None = None) -> ImageCache:
        """A cache held in RAM from uint8 ``[3, h, w]`` images already fitted to ``side`` (see :func:`decode_resized`)."""
        canvas = np.zeros((len(images), 3, side, side), dtype=np.uint8)
        for i, image in enumerate(images):
            canvas[i, :, :image.shape[-2], :image.shape[-1]] = image.numpy()
        return cls(images=canvas, hw=np.array([im.shape[-2:] for im in images], dtype=np.int64).reshape(-1, 2),
                   labels=np.zeros(len(images), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64),
                   classes=list(classes), paths=[str(p) for p in paths], skipped=[], side=side)


def _decode(path: Path, exif_orientation: bool = False) -> torch.Tensor:
    """Decode to uint8 RGB [3, H, W] with torchvision, falling back to PIL (optionally turned upright by its EXIF tag)."""
    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB, apply_exif_orientation=exif_orientation)
    except RuntimeError:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image) if exif_orientation else image
            return torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)


def _fit_size(h: int, w: int, side: int) -> list[int]:
    """(h, w) scaled so the longer side is ``side``, aspect ratio kept."""
    scale = side / max(h, w)
    return [max(1, min(side, round(h * scale))), max(1, min(side, round(w * scale)))]


def _load_resized(path: Path, side: int, min_side: int, exif_orientation: bool) -> torch.Tensor | str:
    """The image resized to fit ``side``, or the reason it is skipped."""
    try:
        image = _decode(path, exif_orientation)
    except Exception as exc:  # any undecodable file is skipped, never a crash
        message = str(exc).splitlines()[0] if str(exc) else ""
        return f"undecodable ({type(exc).__name__}: {message})"
    h, w = image.shape[-2:]
    if min(h, w) < min_side:
        return f"too small ({h}x{w} < {min_side})"
    return TF.resize(image, _fit_size(h, w, side), antialias=True)


def decode_resized(paths: Sequence[Path], side: int, min_side: int = 32,
                   exif_orientation: bool = False) -> Iterator[torch.Tensor | str]:
    """Decode ``paths`` in order (a small thread pool): each a uint8 ``[3, h, w]`` image whose longer side is
    ``side``, or the reason it can't be used (undecodable, shorter side below ``min_side``)."""
    with ThreadPoolExecutor(_DECODE_WORKERS) as pool:
        yield from pool.map(lambda path: _load_resized(path, side, min_side, exif_orientation), paths)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0]


def _cache_key(
    root: Path, index: ImageIndex, side: int, min_side: int, limit_per_class: int | None, seed: int
) -> dict:
    return {
        "root": str(root),
        "side": side,
        "min_side": min_side,
        "limit_per_class": limit_per_class,
        "seed": seed,
        "n_files": len(index.paths) + len(index.skipped),
    }


def _limit(index: ImageIndex, limit_per_class: int | None, seed: int) -> list[int]:
    """Positions in ``index`` kept: all, or a seeded random subset of each class."""
    labels = np.asarray(index.labels)
    kept = [subset(np.flatnonzero(labels == k), limit_per_class, seed + k) for k in range(len(index.classes))]
    return np.concatenate(kept).tolist()


def _summary(cache: ImageCache) -> str:
    counts = np.bincount(cache.labels, minlength=len(cache.classes))
    per_class = ", ".join(f"{c} {n}" for c, n in zip(cache.classes, counts))
    reasons = Counter(_reason_kind(r) for _, r in cache.skipped)
    skipped = "; ".join(f"{kind}: {n}" for kind, n in sorted(reasons.items())) or "none"
    n_skipped = len(cache.skipped)
    return f"image cache: {len(cache)} images ({per_class}), side {cache.side}, skipped {n_skipped} ({skipped})"


def _write_meta(cache_dir: Path, meta: dict) -> None:
    tmp = cache_dir / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, cache_dir / META_FILE)


def _read_meta(cache_dir: Path) -> dict | None:
    try:
        return json.loads((cache_dir / META_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def build_cache(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    side: int = 200,
    min_side: int = 32,
    limit_per_class: int | None = None,
    seed: int = 0,
) -> ImageCache:
    """Decode every image under ``root`` once into a uint8 memmap in ``cache_dir`` (reused if already built).

    Each image is resized so its longer side is ``side`` and written top-left into an S x S canvas.
    Files that are not images, can't be decoded, or have a shorter side below ``min_side`` are skipped
    with a reason. ``limit_per_class`` keeps a seeded random subset of each class.
    """
    root = Path(root).resolve()
    cache_dir = Path(cache_dir)
    index = index_images(root)
    key = _cache_key(root, index, side, min_side, limit_per_class, seed)
    meta = _read_meta(cache_dir)
    if meta is not None and meta.get("key") == key:
        try:
            cache = load_cache(cache_dir)
        except DataError:
            pass
        else:
            print(_summary(cache) + " [reused]")
            return cache

    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / META_FILE).unlink(missing_ok=True)  # from here on the folder holds no finished cache
    positions = _limit(index, limit_per_class, seed)
    images_path = cache_dir / IMAGES_FILE
    images = np.memmap(images_path, dtype=np.uint8, mode="w+", shape=(len(positions), 3, side, side))
    hw, labels, paths = [], [], []
    skipped = [(p.relative_to(root).as_posix(), r) for p, r in index.skipped]
    results = decode_resized([index.paths[i] for i in positions], side, min_side)
    for i, result in zip(positions, tqdm(results, total=len(positions), desc="decode", unit="img")):
        rel = index.paths[i].relative_to(root).as_posix()
        if isinstance(result, str):
            skipped.append((rel, result))
            continue
        h, w = result.shape[-2:]
        images[len(hw), :, :h, :w] = result.numpy()
        hw.append((h, w))
        labels.append(index.labels[i])
        paths.append(rel)
    images.flush()
    del images
    if not hw:
        raise DataError(f"no decodable images under {root}")
    os.truncate(images_path, len(hw) * 3 * side * side)
    _write_meta(
        cache_dir,
        {
            "key": key,
            "side": side,
            "hw": hw,
            "labels": labels,
            "classes": index.classes,
            "paths": paths,
            "skipped": skipped,
        },
    )
    cache = load_cache(cache_dir)
    print(_summary(cache))
    return cache


def load_cache(cache_dir: str | os.PathLike) -> ImageCache:
    """Open a finished cache written by :func:`build_cache` (images as a read-only memmap)."""
    cache_dir = Path(cache_dir)
    meta = _read_meta(cache_dir)
    if meta is None:
        raise DataError(f"no finished image cache in {cache_dir} ({META_FILE} missing or unreadable)")
    side, n = meta["side"], len(meta["labels"])
    images_path = cache_dir / IMAGES_FILE
    if not images_path.is_file() or images_path.stat().st_size != n * 3 * side * side:
        raise DataError(f"incomplete image cache in {cache_dir} ({IMAGES_FILE} missing or of the wrong size)")
    return ImageCache(
        images=np.memmap(images_path, dtype=np.uint8, mode="r", shape=(n, 3, side, side)),
        hw=np.asarray(meta["hw"], dtype=np.int64).reshape(n, 2),
        labels=np.asarray(meta["labels"], dtype=np.int64),
        classes=list(meta["classes"]),
        paths=list(meta["paths"]),
        skipped=[tuple(s) for s in meta["skipped"]],
        side=side,
    )


# --------------------------------------------------------------------------- splits


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over classes in proportion to ``counts`` (largest remainder; sums to ``n``)."""
    quota = counts * n / counts.sum()
    alloc = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - alloc), kind="stable")
    alloc[order[: n - alloc.sum()]] += 1
    return alloc


def _check_classes(labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels) if labels.size else np.zeros(0, dtype=np.int64)
    if len(counts) < 2 or (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise DataError(f"need images of every class, got counts {counts.tolist()} (missing classes {missing})")
    return counts


def _scaled_test_sizes(n: int, test_size: int, test2_size: int, max_fraction: float = 0.2) -> tuple[int, int]:
    cap = int(max_fraction * n)
    largest = max(test_size, test2_size)
    if largest <= cap:
        return test_size, test2_size
    scale = cap / largest
    sizes = int(test_size * scale), int(test2_size * scale)
    warnings.warn(
        f"only {n} images: test splits scaled from {test_size}/{test2_size} to {sizes[0]}/{sizes[1]}", stacklevel=3
    )
    return sizes


def make_splits(
    labels: np.ndarray, seed: int, test_size: int = 4000, test2_size: int = 4000
) -> dict[str, np.ndarray]:
    """Disjoint, covering, label-stratified index splits ``train``/``test``/``test2`` (sorted), from ``seed``.

    On small data each test split is scaled down to at most 20 % of the images (with a warning).
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = _check_classes(labels)
    test_size, test2_size = _scaled_test_sizes(len(labels), test_size, test2_size)
    n_test = _allocate(counts, test_size)
    n_test2 = _allocate(counts - n_test, test2_size)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": [], "test2": []}
    for k in range(len(counts)):
        members = rng.permutation(np.flatnonzero(labels == k))
        a, b = n_test[k], n_test[k] + n_test2[k]
        parts["test"].append(members[:a])
        parts["test2"].append(members[a:b])
        parts["train"].append(members[b:])
    splits = {name: np.sort(np.concatenate(p)) for name, p in parts.items()}
    empty = [name for name, idx in splits.items() if idx.size == 0]
    if empty:
        raise DataError(f"split(s) {empty} would be empty with {len(labels)} images")
    return splits


def subset(indices: np.ndarray, n: int | None, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """A sorted seeded random subset of ``n`` of ``indices`` (all if ``n`` is None or too large).

    With ``labels`` (indexed by the values of ``indices``) the subset is exactly stratified by label;
    without, it is uniform, so balanced in expectation.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if n is None or n >= len(indices):
        return np.sort(indices)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(indices, size=n, replace=False))
    sub_labels = np.asarray(labels)[indices]
    classes, counts = np.unique(sub_labels, return_counts=True)
    picks = [
        rng.choice(indices[sub_labels == c], size=k, replace=False) for c, k in zip(classes, _allocate(counts, n))
    ]
    return np.sort(np.concatenate(picks))
