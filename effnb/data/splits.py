"""Deterministic label-stratified splits and seeded subsets of image indices."""

from __future__ import annotations

import warnings

import numpy as np

from effnb.data.errors import DataError


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
