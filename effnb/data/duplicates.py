"""Exact and near-duplicate images, so that no copy of an image sits in one split while another is tested.

Exact copies share the SHA-256 of their file bytes. Near copies (re-encoded, resized, slightly retouched) are
found by the DCT perceptual hash of Zauner (2010), the one ``imagehash.phash`` computes: the image in grayscale
at 32 x 32, its 2-D DCT, the top-left 8 x 8 coefficients compared with their median, 64 bits. Two images are
near copies when their hashes differ in at most ``threshold`` bits. Images linked by either relation form a
group (connected components, i.e. union-find over the pairs).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.fft import dctn
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from effnb.data.cache import ImageCache
from effnb.utils.atomic import ensure_dir, write_json

PHASH_THRESHOLD = 6  # bits of 64; chosen on the PetImages pairs (see notebook 01 and the README)
HASH_SIZE, DCT_SIZE = 8, 32
FORMAT = 1  # of the stored result; a change of the method bumps it
STORE_FILE = "duplicates.json"
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's "L" mode


def file_digests(root: str | os.PathLike, paths: Sequence[str]) -> list[str]:
    """The SHA-256 (hex) of each file ``root/path``."""
    digests = []
    for path in paths:
        with open(Path(root) / path, "rb") as f:
            digests.append(hashlib.file_digest(f, "sha256").hexdigest())
    return digests


def phash(images: np.ndarray, hw: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The 64-bit DCT perceptual hash (uint64, first coefficient in the highest bit) of each cached image.

    ``images`` are uint8 ``[N, 3, S, S]`` canvases holding image ``i`` in their top-left ``hw[i]`` (as in
    :class:`~effnb.data.cache.ImageCache`). Each image is resized to 32 x 32 (bilinear, antialiased) and then
    made grayscale (the conversion is linear, so the order matters only by rounding); imagehash resizes the
    grayscale image with a Lanczos filter: on 1,500 PetImages the hash here (200 px cache) equals ``imagehash.phash`` of the
    original file for 92 % of them, and is never more than 4 bits off (0.17 on average)."""
    hw = np.asarray(hw, dtype=np.int64).reshape(-1, 2)
    small = np.empty((len(hw), DCT_SIZE, DCT_SIZE), dtype=np.float32)
    shapes, shape_of = np.unique(hw, axis=0, return_inverse=True)
    for s, (h, w) in enumerate(shapes):
        members = np.flatnonzero(shape_of.ravel() == s)
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            pixels = torch.from_numpy(np.ascontiguousarray(images[chunk, :, :h, :w]))
            resized = torch.nn.functional.interpolate(pixels, size=(DCT_SIZE, DCT_SIZE), mode="bilinear",
                                                      antialias=True)
            small[chunk] = torch.einsum("nchw,c->nhw", resized.float(), _LUMA).numpy()
    low = dctn(small, type=2, axes=(1, 2))[:, :HASH_SIZE, :HASH_SIZE].reshape(len(hw), -1)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def near_pairs(hashes: np.ndarray, threshold: int, block: int = 512) -> np.ndarray:
    """Every pair ``(i, j, distance)`` with ``i < j`` whose hashes differ in at most ``threshold`` bits.

    Exhaustive and exact: each block of rows is XORed with every later hash and the bits counted by
    ``np.bitwise_count`` (numpy >= 2): about 2 s for the 22,998 PetImages on 2 shared cores.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    found = [np.zeros((0, 3), dtype=np.int64)]
    for start in range(0, len(hashes), block):
        rows = hashes[start:start + block]
        distance = np.bitwise_count(rows[:, None] ^ hashes[None, start:])
        i, j = np.nonzero(distance <= threshold)
        i, j = i[i < j], j[i < j]
        found.append(np.stack([start + i, start + j, distance[i, j]], axis=1).astype(np.int64))
    return np.concatenate(found)


def group_ids(n: int, pairs: np.ndarray) -> np.ndarray:
    """For each of ``n`` items, the smallest item connected to it by ``pairs`` (``[m, 2]``; itself if none)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_array((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, component, np.arange(n))
    return first[component]


def _members(ids: np.ndarray) -> list[list[int]]:
    """The groups of two or more items sharing an id, each sorted, ordered by their first member."""
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    groups = [g.tolist() for g in np.split(order, bounds) if len(g) > 1]
    return sorted(groups)


@dataclass(frozen=True)
class Duplicates:
    """The duplicate groups of a set of images (indices into it).

    ``groups[i]`` is the smallest index of image ``i``'s group (``i`` when it has no copy); ``exact`` lists the
    sets of byte-identical files; ``pairs`` the near pairs ``(i, j, distance)`` found at ``threshold``.
    """

    groups: np.ndarray
    exact: list[list[int]]
    pairs: np.ndarray
    threshold: int

    @property
    def sets(self) -> list[list[int]]:
        """Every group of two or more images, exact or near."""
        return _members(self.groups)

    @property
    def near(self) -> list[list[int]]:
        """The groups that are not one set of identical files (at least two different files in them)."""
        exact = {tuple(g) for g in self.exact}
        return [g for g in self.sets if tuple(g) not in exact]

    def mixed(self, labels: np.ndarray) -> list[list[int]]:
        """The groups whose images carry more than one label (one photo filed under two classes)."""
        labels = np.asarray(labels)
        return [g for g in self.sets if len(np.unique(labels[g])) > 1]

    def counts(self, labels: np.ndarray) -> dict[str, int]:
        """How many exact groups, near groups, images in a group, groups with two labels, and near pairs."""
        return {"exact groups": len(self.exact), "near groups": len(self.near),
                "images in a group": sum(map(len, self.sets)), "groups with two labels": len(self.mixed(labels)),
                "near pairs": len(self.pairs)}

    def examples(self, n: int) -> np.ndarray:
        """Up to ``n`` near pairs of different files, the most distant first: what the threshold still admits."""
        file_of = np.arange(len(self.groups))  # the first of its identical files
        for g in self.exact:
            file_of[g] = g[0]
        pairs = self.pairs[file_of[self.pairs[:, 0]] != file_of[self.pairs[:, 1]]]
        return pairs[np.argsort(-pairs[:, 2], kind="stable")][:n]


def spanning(groups: np.ndarray, splits: Mapping[str, np.ndarray]) -> int:
    """How many groups of ``groups`` (an id per image) have members in more than one of ``splits``."""
    groups = np.asarray(groups)
    seen: dict[int, set[str]] = {}
    for name, indices in splits.items():
        for g in np.unique(groups[np.asarray(indices, dtype=np.int64)]).tolist():
            seen.setdefault(g, set()).add(name)
    return sum(len(names) > 1 for names in seen.values())


def _store_key(cache: ImageCache, root: Path, threshold: int) -> str:
    """Identifies the result: the method, the threshold, the decoded pixels (the cache's fingerprint) and each
    file's path, size and modification time (the exact copies are found from the bytes)."""
    files = [(p, st.st_size, st.st_mtime_ns) for p in cache.paths for st in [(root / p).stat()]]
    body = json.dumps([FORMAT, threshold, HASH_SIZE, DCT_SIZE, cache.fingerprint, files])
    return hashlib.sha256(body.encode()).hexdigest()


def detect(cache: ImageCache, root: str | os.PathLike, threshold: int = PHASH_THRESHOLD) -> Duplicates:
    """Find the exact and near duplicates among the images of ``cache``, whose files are under ``root``."""
    n = len(cache)
    _, same_bytes = np.unique(file_digests(root, cache.paths), return_inverse=True)
    exact = _members(same_bytes.ravel())
    exact_pairs = np.array([(g[0], m) for g in exact for m in g[1:]], dtype=np.int64).reshape(-1, 2)
    pairs = near_pairs(phash(cache.images, cache.hw), threshold)
    groups = group_ids(n, np.concatenate([exact_pairs, pairs[:, :2]]))
    return Duplicates(groups=groups, exact=exact, pairs=pairs, threshold=threshold)


def _store_path(cache: ImageCache, store: str | os.PathLike | None) -> Path | None:
    """Where the result is kept: ``store``, else beside the cache's images file; None for a cache held in RAM."""
    if store is not None:
        return Path(store) / STORE_FILE
    images_file = getattr(cache.images, "filename", None)  # a memmap knows its file
    return Path(images_file).parent / STORE_FILE if images_file and cache.fingerprint else None


def find_duplicates(cache: ImageCache, root: str | os.PathLike, threshold: int = PHASH_THRESHOLD,
                    store: str | os.PathLike | None = None) -> Duplicates:
    """:func:`detect`, kept in ``store`` (default: the image cache's folder) and read back while the images, their
    files and the threshold are unchanged. A cache held in RAM is always detected afresh."""
    root, path = Path(root), _store_path(cache, store)
    if path is None:
        return detect(cache, root, threshold)
    key = _store_key(cache, root, threshold)
    try:
        saved = json.loads(path.read_text())
        groups = np.asarray(saved["groups"], dtype=np.int64)
        if saved["key"] == key and groups.shape == (len(cache),):
            return Duplicates(groups=groups, exact=saved["exact"], threshold=threshold,
                              pairs=np.asarray(saved["pairs"], dtype=np.int64).reshape(-1, 3))
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: detect again and rewrite it
        pass
    found = detect(cache, root, threshold)
    try:
        write_json(ensure_dir(path.parent, "duplicates folder") / STORE_FILE,
                   {"key": key, "groups": found.groups.tolist(), "exact": found.exact, "pairs": found.pairs.tolist()},
                   indent=None)
    except OSError as exc:  # a read-only cache folder, a full disk: detected again next time
        warnings.warn(f"duplicates found but not kept in {path}: {exc}", stacklevel=2)
    return found
