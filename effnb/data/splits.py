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


SPLITS = ("train", "test", "test2")


def _keep_groups_together(split_of: np.ndarray, rank: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
    """Move the members of each group (images sharing an id in ``groups``) into one split, in place.

    The group goes to the split of its first (smallest-index) member, else (when that split has too few images
    to swap with) to the first of ``train``, ``test``, ``test2`` that has enough. Each move swaps the member with
    an image of the same label in that split that is in no group, the first in the seeded order ``rank`` not
    swapped yet: every split keeps its size and its label counts.
    """
    if groups.shape != labels.shape:
        raise DataError(f"need one group id per image, got {groups.shape} for {labels.shape[0]} images")
    _, group_of, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    group_of = group_of.ravel()
    free = sizes[group_of] == 1
    queues: dict[tuple[int, int], list[int]] = {}  # (label, split) -> its free images, best first, not yet taken

    def queue(label: int, split: int) -> list[int]:
        if (label, split) not in queues:
            there = np.flatnonzero(free & (labels == label) & (split_of == split))
            queues[label, split] = there[np.argsort(-rank[there], kind="stable")].tolist()  # popped from the end
        return queues[label, split]

    order = np.argsort(group_of, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(group_of[order])) + 1):
        if len(np.unique(split_of[members])) < 2:
            continue
        for target in dict.fromkeys([int(split_of[members[0]]), *range(len(SPLITS))]):
            movers = members[split_of[members] != target]
            need = np.unique(labels[movers], return_counts=True)
            if all(len(queue(int(k), target)) >= n for k, n in zip(*need)):
                break
        else:
            raise DataError(f"cannot keep a group of {len(members)} duplicates inside one split: no split has "
                            "enough images without a copy to swap with")
        for i in movers:
            partner = queue(int(labels[i]), target).pop()
            split_of[partner], split_of[i] = split_of[i], target


def make_splits(
    labels: np.ndarray, seed: int, test_size: int = 4000, test2_size: int = 4000, groups: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Disjoint, covering, label-stratified index splits ``train``/``test``/``test2`` (sorted), from ``seed``.

    On small data each test split is scaled down to at most 20 % of the images (with a warning). With ``groups``
    (an id per image, e.g. :attr:`effnb.data.duplicates.Duplicates.groups`) images sharing an id end in the same
    split, with the sizes and label counts of every split unchanged (see :func:`_keep_groups_together`); images
    with no copy stay where the seed put them unless swapped for a copy.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = _check_classes(labels)
    test_size, test2_size = _scaled_test_sizes(len(labels), test_size, test2_size)
    n_test = _allocate(counts, test_size)
    n_test2 = _allocate(counts - n_test, test2_size)
    rng = np.random.default_rng(seed)
    split_of = np.zeros(len(labels), dtype=np.int64)  # index into SPLITS
    rank = np.zeros(len(labels), dtype=np.int64)  # position in its class's seeded permutation
    for k in range(len(counts)):
        members = rng.permutation(np.flatnonzero(labels == k))
        a, b = n_test[k], n_test[k] + n_test2[k]
        split_of[members[:a]], split_of[members[a:b]] = 1, 2
        rank[members] = np.arange(len(members))
    if groups is not None:
        _keep_groups_together(split_of, rank, labels, np.asarray(groups))
    splits = {name: np.flatnonzero(split_of == code) for code, name in enumerate(SPLITS)}
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
