"""What a model sees: a :class:`Feed` of cached images at one size, augmented for training or preprocessed for evaluation.

Batches are gathered from the uint8 cache and cropped/resized in one batched call, so an epoch never decodes a JPEG.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from effnb.data.cache import ImageCache
from effnb.data.transforms import P_RANGE, TestSize, eval_batch, train_batch
from effnb.train.distributed import shard_slice

# evaluation batch of the fast path: a small batch keeps its activations in the CPU's caches (``effnb bench`` times it)
EVAL_BATCH = 32


MAX_RESOLUTION_FACTOR = 2  # resolutions up to twice the cache's image side; beyond, memory grows for no detail
MIN_USEFUL_RESOLUTION = 16  # the networks downsample 8x: below this they see at most 2 x 2 positions


def check_resolution(resolution: int, cache_side: int) -> None:
    """Refuse a resolution that is not a positive integer or above ``MAX_RESOLUTION_FACTOR`` x the cache's side;
    warn about a tiny one."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    limit = MAX_RESOLUTION_FACTOR * cache_side
    if resolution > limit:
        raise ValueError(f"resolution {resolution} px is above the limit of {limit} px "
                         f"({MAX_RESOLUTION_FACTOR} x the side {cache_side} of the decoded images)")
    if resolution < MIN_USEFUL_RESOLUTION:
        warnings.warn(f"resolution {resolution} px is tiny (below {MIN_USEFUL_RESOLUTION} px the network sees at most "
                      f"2 x 2 positions): expect accuracy near chance", stacklevel=1)


@dataclass(frozen=True)
class Feed:
    """Which images, at which input size, with which preprocessing: "train" augmentation or "eval" preprocessing.

    ``side`` is the side of the square images it yields, the network's input: k_train to train, k_test to
    evaluate (cut from the shorter side ``k_image_test``, by default derived by :meth:`TestSize.at`).
    """

    cache: ImageCache
    indices: np.ndarray
    side: int
    mode: Literal["train", "eval"] = "train"
    k_image_test: int | None = None
    batch_size: int = 64
    p_range: tuple[float, float] = P_RANGE  # train mode: range of the crop proportion (smaller = stronger)

    def __post_init__(self) -> None:
        check_resolution(self.side, self.cache.side)

    @property
    def test_size(self) -> TestSize:
        """The evaluation preprocessing's sides (eval mode)."""
        return TestSize.at(self.side, self.k_image_test)

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, generator: torch.Generator | None = None, shuffle: bool = False, drop_last: bool = False,
                part: tuple[int, int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (normalised channels-last images, labels); train mode augments with ``generator``.

        With ``part = (rank, world)`` each global batch is cut to that rank's equal share (:func:`shard_slice`).
        """
        order = self.indices
        if shuffle:
            order = order[torch.randperm(len(order), generator=generator).numpy()]
        stop = len(order) - (len(order) % self.batch_size if drop_last else 0)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) == 0:
                break
            if part is not None:
                yield self._share(idx, generator, shard_slice(len(idx), part))
                continue
            images = torch.from_numpy(np.ascontiguousarray(self.cache.images[idx]))
            hw = torch.from_numpy(np.asarray(self.cache.hw[idx]))
            labels = torch.from_numpy(np.asarray(self.cache.labels[idx], dtype=np.int64))
            if self.mode == "train":
                x, _ = train_batch(images, hw, self.side, generator=generator, p_range=self.p_range)
            else:
                x = eval_batch(images, hw, *self.test_size)
            yield x, labels

    def _share(self, idx: np.ndarray, generator: torch.Generator | None, share: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """One rank's share of the global batch ``idx``: train mode augments the whole batch with the shared
        generator and keeps the share, so every rank draws what one process draws, whatever the world size."""
        if self.mode == "train":
            images = torch.from_numpy(np.ascontiguousarray(self.cache.images[idx]))
            hw = torch.from_numpy(np.asarray(self.cache.hw[idx]))
            x = train_batch(images, hw, self.side, generator=generator, p_range=self.p_range)[0][share]
        else:
            idx = idx[share]
            images = torch.from_numpy(np.ascontiguousarray(self.cache.images[idx]))
            x = eval_batch(images, torch.from_numpy(np.asarray(self.cache.hw[idx])), *self.test_size)
        labels = torch.from_numpy(np.asarray(self.cache.labels[idx[share] if self.mode == "train" else idx],
                                             dtype=np.int64))
        return x.contiguous(memory_format=torch.channels_last), labels
