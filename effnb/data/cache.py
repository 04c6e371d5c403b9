"""The decoded-image cache: every image of a tree decoded once into a uint8 memmap, reused while the files
and settings are unchanged, rebuilt (with a warning) when damaged."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from effnb.data.decode import decode_resized
from effnb.data.errors import DataError
from effnb.data.index import ImageIndex, index_images, skip_counts
from effnb.data.splits import subset
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
META_FILE = "meta.json"
IMAGES_FILE = "images.u8"  # the stem of the images file; each build writes its own ``images-<random>.u8``
CACHE_FORMAT = 4  # 3: decoded by Pillow; 4: links followed, ctime and inode listed, images and metadata hashed


def cache_home() -> Path:
    """Where effnb keeps caches outside an artifacts folder: ``$EFFNB_CACHE_DIR``, else ``$XDG_CACHE_HOME/effnb``,
    else ``~/.cache/effnb``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "effnb"


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
            f"({skip_counts(cache.skipped)})")


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _meta_sha256(meta: dict) -> str:
    """The hash of everything in ``meta`` but itself: labels, sizes, paths, the images file's hash..."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


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


def _open_cache(cache_dir: Path, meta: dict, verify: bool = True) -> ImageCache:
    """The cache ``meta`` describes, after checking the metadata's hash and (with ``verify``) that the images
    file's bytes hash to what was written."""
    try:
        side, n = int(meta["side"]), len(meta["labels"])
        images_path = cache_dir / Path(meta["images"]).name
        cache = ImageCache(
            images=np.empty(0), hw=np.asarray(meta["hw"], dtype=np.int64).reshape(n, 2),
            labels=np.asarray(meta["labels"], dtype=np.int64), classes=[str(c) for c in meta["classes"]],
            paths=[str(p) for p in meta["paths"]], skipped=[(str(p), str(r)) for p, r in meta["skipped"]],
            side=side, fingerprint=str(meta["fingerprint"]))
        expected = (int(meta["images_size"]), int(meta["images_mtime_ns"]))
        if meta["meta_sha256"] != _meta_sha256(meta):
            raise ValueError("its content does not match its hash")
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
    if verify and _file_sha256(images_path) != meta["images_sha256"]:
        raise DataError(f"damaged image cache in {cache_dir} ({images_path.name} does not match its hash)")
    cache.images = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(n, 3, side, side))
    return cache


def load_cache(cache_dir: str | os.PathLike, verify: bool = True) -> ImageCache:
    """Open a finished cache written by :func:`build_cache` (images as a read-only memmap), checked against its
    hashes (the images file's only with ``verify``)."""
    cache_dir = Path(cache_dir)
    meta = _read_meta(cache_dir)
    if meta is None:
        raise DataError(f"no finished image cache in {cache_dir} ({META_FILE} missing)")
    return _open_cache(cache_dir, meta, verify)


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
        images = _reserved_memmap(tmp, (len(positions), 3, side, side))
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
                            f"({len(failed)} skipped: {skip_counts(failed)})")
        os.truncate(tmp, len(hw) * 3 * side * side)
        final = cache_dir / f"{Path(IMAGES_FILE).stem}-{secrets.token_hex(6)}.u8"
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    st = final.stat()
    meta = {"key": key, "side": side, "hw": hw, "labels": labels, "classes": index.classes, "paths": paths,
            "skipped": skipped, "fingerprint": digest.hexdigest()[:16], "images": final.name,
            "images_size": st.st_size, "images_mtime_ns": st.st_mtime_ns, "images_sha256": _file_sha256(final)}
    meta = json.loads(json.dumps(meta))  # hashed as it will be read back (tuples become lists)
    write_json(cache_dir / META_FILE, meta | {"meta_sha256": _meta_sha256(meta)}, indent=None)
    for old in cache_dir.glob(f"{Path(IMAGES_FILE).stem}*.u8"):
        if old != final:  # a run still reading an old file keeps it open: unlinking does not disturb it
            old.unlink()
    return load_cache(cache_dir, verify=False)  # just hashed


def _reserved_memmap(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A writable uint8 memmap over a new file whose disk space is reserved first: a full disk is then a
    one-line error here, not a SIGBUS later when a page of the map is written."""
    size = int(np.prod(shape))
    with open(path, "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # a file system that cannot reserve
                f.truncate(size)
                return np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)
            raise DataError(f"not enough disk space for the image cache in {path.parent}: it needs "
                            f"{size / 1e9:.2f} GB ({exc.strerror or exc})") from None
    return np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)


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

    The cache is reused only when it was built from the same files (paths, classes, and for each file what is
    read: a link's target, size, modification and change times, inode) with the same settings, and its
    metadata and images file match the hashes written with them; otherwise it is rebuilt with a warning.
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
