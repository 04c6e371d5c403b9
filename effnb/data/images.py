"""Finding images in a class-per-folder tree, a decoded-image cache, and deterministic stratified splits."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as TF

from effnb.utils.atomic import (
    LOCK_FILE,
    ensure_dir,
    locked,
    remove_stale_temps,
    temp_path,
    write_json,
)
from effnb.utils.progress import tqdm

CACHE_ENV = "EFFNB_CACHE_DIR"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
META_FILE = "meta.json"
IMAGES_FILE = "images.u8"  # the stem of the images file; each build writes its own ``images-<random>.u8``
CACHE_FORMAT = 2  # 2: EXIF orientation applied, images in sub-folders included
_DECODE_WORKERS = 2


class DataError(ValueError):
    """Bad or missing input data (one-line message)."""


def cache_home() -> Path:
    """Where effnb keeps caches outside an artifacts folder: ``$EFFNB_CACHE_DIR``, else ``$XDG_CACHE_HOME/effnb``,
    else ``~/.cache/effnb``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "effnb"


# --------------------------------------------------------------------------- indexing


@dataclass
class ImageIndex:
    """Image files found under a root, with integer labels into ``classes``, and the files skipped.

    ``listing`` is a hash of the relative path, size and modification time of every entry seen (images
    and skipped files alike): it changes whenever a file is added, removed, moved or rewritten.
    """

    paths: list[Path]
    labels: list[int]
    classes: list[str]
    skipped: list[tuple[Path, str]]
    listing: str


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
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    return None if _has_image_magic(head) else "not an image (unknown header)"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _entries(class_dir: Path) -> Iterator[tuple[Path, str | None]]:
    """Every entry under ``class_dir``, sub-folders included, with why it is not a candidate image (or None).

    Hidden entries, links to folders (not followed), broken links and unreadable folders are reported,
    never silently dropped.
    """
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(class_dir, onerror=errors.append):
        folder = Path(folder)
        for name in sorted(dirs):
            path = folder / name
            if not _visible(path):
                yield path, "hidden folder"
            elif path.is_symlink():
                yield path, "link to a folder (not followed)"
        dirs[:] = sorted(d for d in dirs if _visible(folder / d) and not (folder / d).is_symlink())
        for name in sorted(files):
            path = folder / name
            if not _visible(path):
                yield path, "hidden file"
            elif path.is_symlink() and not path.exists():
                yield path, "broken link"
            elif not path.is_file():
                yield path, "not a regular file"
            else:
                yield path, None
    for exc in errors:
        yield Path(exc.filename), f"unreadable folder ({exc.strerror or type(exc).__name__})"


def _listing_line(root: Path, path: Path) -> str:
    try:
        st = path.lstat()
        return f"{path.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}"
    except OSError:
        return f"{path.relative_to(root).as_posix()}\t-\t-"


def index_images(root: str | os.PathLike) -> ImageIndex:
    """Index a class-per-folder tree in sorted order, skipping (and counting) what is not an image.

    Each folder ``root/<class>/`` is a class; images in its sub-folders belong to it too (as in
    torchvision's ``ImageFolder``). Non-image, hidden, unreadable files and broken links are skipped with a
    reason; so are files directly in ``root``. A class folder whose files are all skipped is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} is a file, not a folder" if root.exists() else f"data folder not found: {root}")
    try:
        top = sorted(root.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read data folder {root}: {exc.strerror or exc}") from None
    class_dirs = [d for d in top if d.is_dir() and _visible(d)]
    if not class_dirs:
        raise DataError(f"no class subfolders in {root}")
    skipped: list[tuple[Path, str]] = [(p, "not in a class folder") for p in top if _visible(p) and p not in class_dirs]
    found: dict[str, list[Path]] = {}
    unusable: list[str] = []
    lines = [_listing_line(root, p) for p, _ in skipped]
    for class_dir in class_dirs:
        n_entries = 0
        for path, reason in _entries(class_dir):
            n_entries += 1
            lines.append(_listing_line(root, path))
            reason = reason or _skip_reason(path)
            if reason is None:
                found.setdefault(class_dir.name, []).append(path)
            else:
                skipped.append((path, reason))
        if n_entries and class_dir.name not in found:
            unusable.append(class_dir.name)
    if unusable:
        theirs = [s for s in skipped if s[0].relative_to(root).parts[0] in unusable]
        raise DataError(f"class folder(s) {unusable} in {root} hold no usable image files ({_skip_counts(theirs)})")
    if len(found) < 2:
        raise DataError(f"need at least 2 class folders with images in {root}, found {sorted(found)}")
    classes = sorted(found)
    paths = [p for c in classes for p in sorted(found[c])]
    labels = [k for k, c in enumerate(classes) for _ in found[c]]
    listing = hashlib.sha256("\n".join(sorted(lines)).encode("utf-8", "surrogateescape")).hexdigest()
    return ImageIndex(paths=paths, labels=labels, classes=classes, skipped=skipped, listing=listing)


# --------------------------------------------------------------------------- cache


@dataclass
class ImageCache:
    """Decoded images: image ``i`` is ``images[i, :, :hw[i, 0], :hw[i, 1]]`` (top-left of an S x S zero canvas).

    ``fingerprint`` is a hash of the decoded pixels, labels and classes: experiments are keyed by it, so a
    change of the data re-runs them, and a cache rebuilt from unchanged images does not.
    """

    images: np.ndarray
    hw: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]]
    side: int
    fingerprint: str = ""  # empty for a cache held in memory (see :meth:`in_memory`)

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


def _decode(path: Path, exif_orientation: bool = True) -> torch.Tensor:
    """Decode to uint8 RGB [3, H, W] with torchvision, falling back to PIL, turned upright by its EXIF tag
    (unless ``exif_orientation`` is False)."""
    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB, apply_exif_orientation=exif_orientation)
    except RuntimeError:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image) if exif_orientation else image
            return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


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
                   exif_orientation: bool = True) -> Iterator[torch.Tensor | str]:
    """Decode ``paths`` in order (a small thread pool): each a uint8 ``[3, h, w]`` image whose longer side is
    ``side``, or the reason it can't be used (undecodable, shorter side below ``min_side``)."""
    with ThreadPoolExecutor(_DECODE_WORKERS) as pool:
        yield from pool.map(lambda path: _load_resized(path, side, min_side, exif_orientation), paths)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0]


def _skip_counts(skipped: list[tuple]) -> str:
    reasons = Counter(_reason_kind(r) for _, r in skipped)
    return "; ".join(f"{kind}: {n}" for kind, n in sorted(reasons.items())) or "none skipped"


def _cache_key(
    root: Path, index: ImageIndex, side: int, min_side: int, limit_per_class: int | None, seed: int
) -> dict:
    return {
        "format": CACHE_FORMAT,
        "root": str(root),
        "listing": index.listing,
        "side": side,
        "min_side": min_side,
        "limit_per_class": limit_per_class,
        "seed": seed,
    }


def _limit(index: ImageIndex, limit_per_class: int | None, seed: int) -> list[int]:
    """Positions in ``index`` kept: all, or a seeded random subset of each class."""
    labels = np.asarray(index.labels)
    kept = [subset(np.flatnonzero(labels == k), limit_per_class, seed + k) for k in range(len(index.classes))]
    return np.concatenate(kept).tolist()


def _summary(cache: ImageCache) -> str:
    counts = np.bincount(cache.labels, minlength=len(cache.classes))
    per_class = ", ".join(f"{c} {n}" for c, n in zip(cache.classes, counts))
    n_skipped = len(cache.skipped)
    return (f"image cache: {len(cache)} images ({per_class}), side {cache.side}, skipped {n_skipped} "
            f"({_skip_counts(cache.skipped)})")


def _read_meta(cache_dir: Path) -> dict | None:
    """The cache's metadata; None when there is none; DataError when it is damaged."""
    try:
        meta = json.loads((cache_dir / META_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(f"damaged image cache in {cache_dir} ({META_FILE}: {exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"damaged image cache in {cache_dir} ({META_FILE} is not an object)")
    return meta


def _open_cache(cache_dir: Path, meta: dict) -> ImageCache:
    """The cache ``meta`` describes, after checking that its images file is the one written with it."""
    try:
        side, n = int(meta["side"]), len(meta["labels"])
        images_path = cache_dir / Path(meta["images"]).name
        cache = ImageCache(
            images=np.empty(0), hw=np.asarray(meta["hw"], dtype=np.int64).reshape(n, 2),
            labels=np.asarray(meta["labels"], dtype=np.int64), classes=[str(c) for c in meta["classes"]],
            paths=[str(p) for p in meta["paths"]], skipped=[(str(p), str(r)) for p, r in meta["skipped"]],
            side=side, fingerprint=str(meta["fingerprint"]))
        expected = (int(meta["images_size"]), int(meta["images_mtime_ns"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"damaged image cache in {cache_dir} ({META_FILE}: {type(exc).__name__}: {exc})") from None
    if len(cache.paths) != n or (n and not 0 <= cache.labels.min() <= cache.labels.max() < len(cache.classes)):
        raise DataError(f"damaged image cache in {cache_dir} ({META_FILE} is inconsistent)")
    try:
        st = images_path.stat()
    except OSError:
        raise DataError(f"damaged image cache in {cache_dir} ({images_path.name} is missing)") from None
    if (st.st_size, st.st_mtime_ns) != expected or st.st_size != n * 3 * side * side or n == 0:
        raise DataError(f"damaged image cache in {cache_dir} ({images_path.name} was changed after it was written)")
    cache.images = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(n, 3, side, side))
    return cache


def load_cache(cache_dir: str | os.PathLike) -> ImageCache:
    """Open a finished cache written by :func:`build_cache` (images as a read-only memmap)."""
    cache_dir = Path(cache_dir)
    meta = _read_meta(cache_dir)
    if meta is None:
        raise DataError(f"no finished image cache in {cache_dir} ({META_FILE} missing)")
    return _open_cache(cache_dir, meta)


def _reusable(cache_dir: Path, key: dict) -> ImageCache | None:
    """The finished cache in ``cache_dir`` if it was built with ``key``; None (with the reason) otherwise."""
    try:
        meta = _read_meta(cache_dir)
        if meta is None:
            return None
        if meta.get("key") != key:
            print(f"image cache in {cache_dir} was built from other files or settings: rebuilding it")
            return None
        return _open_cache(cache_dir, meta)
    except DataError as exc:
        warnings.warn(f"{exc}: rebuilding it", stacklevel=3)
        return None


def _decode_into(cache_dir: Path, root: Path, index: ImageIndex, key: dict, side: int, min_side: int,
                 positions: list[int]) -> ImageCache:
    """Decode the images at ``positions`` of ``index`` into a new images file, then commit it with its metadata."""
    hw, labels, paths = [], [], []
    skipped = [(p.relative_to(root).as_posix(), r) for p, r in index.skipped]
    digest = hashlib.sha256(json.dumps(index.classes).encode())
    remove_stale_temps(cache_dir / IMAGES_FILE)
    tmp = temp_path(cache_dir / IMAGES_FILE)
    try:
        images = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(positions), 3, side, side))
        results = decode_resized([index.paths[i] for i in positions], side, min_side)
        for i, result in zip(positions, tqdm(results, total=len(positions), desc="decode", unit="img")):
            rel = index.paths[i].relative_to(root).as_posix()
            if isinstance(result, str):
                skipped.append((rel, result))
                continue
            pixels = result.numpy()
            h, w = pixels.shape[-2:]
            images[len(hw), :, :h, :w] = pixels
            digest.update(np.array([index.labels[i], h, w], dtype=np.int64).tobytes() + pixels.tobytes())
            hw.append((h, w))
            labels.append(index.labels[i])
            paths.append(rel)
        images.flush()
        del images
        empty = sorted(set(index.classes) - {index.classes[k] for k in labels})
        if empty:
            failed = [s for s in skipped if Path(s[0]).parts[0] in empty]
            raise DataError(f"no decodable images of class(es) {empty} under {root} "
                            f"({len(failed)} skipped: {_skip_counts(failed)})")
        os.truncate(tmp, len(hw) * 3 * side * side)
        final = cache_dir / f"{Path(IMAGES_FILE).stem}-{secrets.token_hex(6)}.u8"
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    st = final.stat()
    write_json(cache_dir / META_FILE, {
        "key": key, "side": side, "hw": hw, "labels": labels, "classes": index.classes, "paths": paths,
        "skipped": skipped, "fingerprint": digest.hexdigest()[:16], "images": final.name,
        "images_size": st.st_size, "images_mtime_ns": st.st_mtime_ns}, indent=None)
    for old in cache_dir.glob(f"{Path(IMAGES_FILE).stem}*.u8"):
        if old != final:  # a run still reading an old file keeps it open: unlinking does not disturb it
            old.unlink()
    return load_cache(cache_dir)


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

    The cache is reused only when it was built from the same files (paths, classes, sizes and modification
    times) with the same settings, and its images file is the one written with it; otherwise it is rebuilt.
    A build writes a new file and commits it by renaming, under a lock: a second run waits for it, then
    reuses it.
    """
    root = Path(root).resolve()
    cache_dir = ensure_dir(cache_dir, "image cache folder")
    index = index_images(root)
    key = _cache_key(root, index, side, min_side, limit_per_class, seed)
    with locked(cache_dir / LOCK_FILE, f"waiting for another run that is building the image cache in {cache_dir}"):
        cache = _reusable(cache_dir, key)
        if cache is not None:
            print(_summary(cache) + " [reused]")
            return cache
        cache = _decode_into(cache_dir, root, index, key, side, min_side, _limit(index, limit_per_class, seed))
    print(_summary(cache))
    return cache


def check_empty_target(target: str | os.PathLike) -> Path:
    """``target`` if it is a new or empty folder whose parent can be written; otherwise a one-line error.

    Refusing a non-empty folder keeps an exported split from being mixed with other images.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise DataError(f"target {target} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise DataError(f"target folder {target} is not empty: give a new or empty folder")
    ensure_dir(target.parent, "parent folder of the target")
    return target


def link_images(root: str | os.PathLike, rel_paths: list[str], target: str | os.PathLike) -> Path:
    """Symlink ``root/<rel>`` to ``target/<rel>`` for every relative path, into a new or empty ``target``.

    The links are made in a temporary folder renamed to ``target`` at the end: an interrupted export leaves
    no partial folder.
    """
    root, target = Path(root), check_empty_target(target)
    remove_stale_temps(target)
    tmp = temp_path(target, folder=True)
    try:
        for rel in rel_paths:
            link = tmp / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((root / rel).resolve())
        if target.is_dir():
            target.rmdir()  # empty (checked above); rename needs the name free
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


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
