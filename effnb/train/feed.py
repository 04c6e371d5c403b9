"""What a model sees: a :class:`Feed` of cached images at one size, augmented for training or preprocessed for evaluation.

Batches are gathered from the uint8 cache and cropped/resized in one batched call, so an epoch never decodes a JPEG.
On an accelerator (:meth:`Feed.on`) the cache itself is held on the device where it fits, and the crops, resizes
and jitter run there: only the crop boxes and random draws cross from the host.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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


RESIDENT_SHARE = 0.5  # the cache is held on the device only if it takes at most this share of the free memory


@dataclass(frozen=True)
class ResidentImages:
    """The uint8 cache's images and labels as tensors on one device (the GPU-resident pipeline)."""

    images: torch.Tensor  # [N, 3, S, S] uint8
    labels: torch.Tensor  # [N] int64


_RESIDENT: list[tuple[ImageCache, ResidentImages]] = []  # one cache at a time, with the cache it copies


def resident_images(cache: ImageCache, device: torch.device | str) -> ResidentImages | None:
    """``cache``'s images and labels on ``device``, copied once and kept; None where they would take more than
    :data:`RESIDENT_SHARE` of a CUDA device's free memory."""
    device = torch.device(device)
    for held, resident in _RESIDENT:
        if held is cache and resident.images.device == device:
            return resident
    _RESIDENT.clear()
    if device.type == "cuda" and cache.images.nbytes > RESIDENT_SHARE * torch.cuda.mem_get_info(device)[0]:
        return None
    resident = ResidentImages(torch.from_numpy(np.ascontiguousarray(cache.images)).to(device),
                              torch.from_numpy(np.asarray(cache.labels, dtype=np.int64)).to(device))
    _RESIDENT.append((cache, resident))
    return resident


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
    resident: ResidentImages | None = field(default=None, compare=False, repr=False)  # see :meth:`on`

    def __post_init__(self) -> None:
        check_resolution(self.side, self.cache.side)

    @property
    def test_size(self) -> TestSize:
        """The evaluation preprocessing's sides (eval mode)."""
        return TestSize.at(self.side, self.k_image_test)

    def __len__(self) -> int:
        return len(self.indices)

    def on(self, device: torch.device | str) -> Feed:
        """This feed with the cache held on ``device`` (see :func:`resident_images`), so its batches are made
        there; itself on the CPU, or where the cache does not fit."""
        if torch.device(device).type == "cpu":
            return self
        resident = resident_images(self.cache, device)
        return self if resident is None else replace(self, resident=resident)

    def _gather(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The uint8 canvases, sizes (on the CPU) and labels of images ``idx``, from the resident copy if any."""
        hw = torch.from_numpy(np.asarray(self.cache.hw[idx]))
        if self.resident is not None:
            at = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.resident.images.device, non_blocking=True)
            return self.resident.images[at], hw, self.resident.labels[at]
        return (torch.from_numpy(np.ascontiguousarray(self.cache.images[idx])), hw,
                torch.from_numpy(np.asarray(self.cache.labels[idx], dtype=np.int64)))

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
            images, hw, labels = self._gather(idx)
            if self.mode == "train":
                x, _ = train_batch(images, hw, self.side, generator=generator, p_range=self.p_range)
            else:
                x = eval_batch(images, hw, *self.test_size)
            yield x, labels

    def _share(self, idx: np.ndarray, generator: torch.Generator | None, share: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """One rank's share of the global batch ``idx``: train mode augments the whole batch with the shared
        generator and keeps the share, so every rank draws what one process draws, whatever the world size."""
        if self.mode == "train":
            images, hw, labels = self._gather(idx)
            x = train_batch(images, hw, self.side, generator=generator, p_range=self.p_range)[0][share]
            labels = labels[share]
        else:
            images, hw, labels = self._gather(idx[share])
            x = eval_batch(images, hw, *self.test_size)
        return x.contiguous(memory_format=torch.channels_last), labels
