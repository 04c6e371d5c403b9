"""FixRes arithmetic: the mean crop proportion σ, the scale ratio r and the test resolution.

Following Touvron et al. (2019) and the seed's "Train-Test Resolution" section:
a training crop of side ``σ·L`` is resized to ``k_train``, while at test time the
image is resized so its side is ``k_image_test`` and centre-cropped to ``k_test``.
An object therefore looks ``k_train / (σ · k_image_test)`` times larger in training
than at test time; the inverse is

    r = σ · k_image_test / k_train,

and testing at ``k_train / r`` makes objects look the same size as in training.
The seed found σ ≈ 0.444 and r = 0.444 · 72 / 64 ≈ 0.4995, so it tests at twice
the training resolution (64 -> 128, ``k_image_test`` 144).

Here ``L`` is the image's longer side (the train crop's reference) while
``k_image_test`` is the shorter side after the test resize, so for non-square
images the formula is the seed's approximation, exact for square images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from effnb.data.transforms import (
    P_RANGE,
    TEST_CROP_RATIO,
    TestSize,
    image_test_size,
    sample_crop_boxes,
)


def sigma_distribution(
    hw: np.ndarray | Tensor,
    p_range: tuple[float, float] = P_RANGE,
    draws_per_image: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Crop proportions actually used by the real training crop over the images' ``(h, w)``.

    ``draws_per_image`` crops are drawn for every image, with a generator seeded by ``seed``.
    Returns a float array of ``len(hw) * draws_per_image`` proportions (for a histogram).
    """
    hw = torch.as_tensor(np.asarray(hw)).reshape(-1, 2).repeat_interleave(draws_per_image, dim=0)
    _, proportions = sample_crop_boxes(hw, p_range, torch.Generator().manual_seed(seed))
    return proportions.numpy()


def estimate_sigma(
    hw: np.ndarray | Tensor,
    p_range: tuple[float, float] = P_RANGE,
    draws_per_image: int = 1,
    seed: int = 0,
) -> float:
    """σ: the mean crop proportion of the training preprocessing over the training images."""
    return float(sigma_distribution(hw, p_range, draws_per_image, seed).mean(dtype=np.float64))


def expected_sigma(hw: np.ndarray | Tensor, p_range: tuple[float, float] = P_RANGE) -> float:
    """σ computed exactly instead of sampled: the mean over images of E[min(p, a)], p ~ U(lo, hi).

    ``a`` is an image's shorter/longer side (the largest proportion that fits). With lo < a < hi,
    E[min(p, a)] = ((a² - lo²) / 2 + a (hi - a)) / (hi - lo); it is (lo + hi) / 2 when a >= hi (square
    images: exactly 0.45) and a when a <= lo. The real crop rounds its side to whole pixels, which this ignores.
    """
    hw = np.asarray(hw, dtype=np.float64).reshape(-1, 2)
    lo, hi = p_range
    a = hw.min(axis=1) / hw.max(axis=1)
    inside = ((a**2 - lo**2) / 2 + a * (hi - a)) / (hi - lo)
    return float(np.where(a >= hi, (lo + hi) / 2, np.where(a <= lo, a, inside)).mean())


def resolution_ratio(sigma: float, k_image_test: int, k_train: int) -> float:
    """r = σ · k_image_test / k_train (the seed: 0.444 · 72 / 64 ≈ 0.4995)."""
    return sigma * k_image_test / k_train


def apparent_object_scale(sigma: float, k_train: int, k_image_test: int) -> float:
    """How many times larger objects look in training than at test: k_train / (σ · k_image_test) = 1 / r."""
    return k_train / (sigma * k_image_test)


def recommended_test_resolution(
    k_train: int, sigma: float, crop_ratio: float = TEST_CROP_RATIO
) -> TestSize:
    """Test resolution that undoes the train/test scale discrepancy.

    r is measured at the test preprocessing used during training (``k_test = k_train``,
    ``k_image_test = image_test_size(k_train)``); returns the :class:`TestSize` with
    ``k_test = round(k_train / r)`` and ``k_image_test = image_test_size(k_test)``.
    The seed's σ = 0.444 gives (128, 144) at k_train = 64; σ = 0.45 gives (126, 142).
    """
    r = resolution_ratio(sigma, image_test_size(k_train, crop_ratio), k_train)
    k_test = round(k_train / r)
    return TestSize(k_test, image_test_size(k_test, crop_ratio))
