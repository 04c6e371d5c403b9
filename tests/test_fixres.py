import numpy as np
import pytest
import torch

from effnb.data import fixres as F


def _sizes(h: int, w: int, n: int = 20000) -> np.ndarray:
    return np.tile([[h, w]], (n, 1))


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [(200, 200, 0.45), (300, 400, 0.45), (400, 300, 0.45), (100, 200, 0.41), (200, 100, 0.41)],
)
def test_estimate_sigma(h: int, w: int, expected: float) -> None:
    assert F.estimate_sigma(_sizes(h, w)) == pytest.approx(expected, abs=0.01)


def test_estimate_sigma_accepts_tensor_and_is_seeded() -> None:
    hw = _sizes(150, 200, 500)
    assert F.estimate_sigma(hw, seed=1) == F.estimate_sigma(torch.from_numpy(hw), seed=1)
    assert F.estimate_sigma(hw, seed=1) != F.estimate_sigma(hw, seed=2)


def test_sigma_distribution() -> None:
    props = F.sigma_distribution(_sizes(100, 300, 1000), draws_per_image=3)
    assert props.shape == (3000,)
    assert props.min() >= 0.2 - 1e-6 and props.max() <= 1 / 3 + 1e-6
    narrow = F.sigma_distribution(_sizes(100, 100, 1000), p_range=(0.3, 0.4))
    assert narrow.min() >= 0.3 - 1e-6 and narrow.max() <= 0.4 + 1e-6


def test_resolution_ratio_seed_value() -> None:
    assert F.resolution_ratio(0.444, 72, 64) == pytest.approx(0.4995)


def test_recommended_test_resolution() -> None:
    assert F.recommended_test_resolution(64, 0.444) == (128, 144)  # the seed's "twice the resolution"
    assert F.recommended_test_resolution(64, 0.45) == (126, 142)  # 64 / (0.45 * 72 / 64) = 126.4
    assert F.recommended_test_resolution(79, 0.45) == (156, 176)  # r = 0.45 * 89 / 79, 79 / r = 155.8
    assert F.recommended_test_resolution(64, 0.444).k_image_test == 144


def test_apparent_object_scale_is_inverse_of_r() -> None:
    for sigma, k_image_test, k_train in [(0.444, 72, 64), (0.41, 89, 79), (0.45, 164, 146)]:
        r = F.resolution_ratio(sigma, k_image_test, k_train)
        assert F.apparent_object_scale(sigma, k_train, k_image_test) * r == pytest.approx(1.0)


@pytest.mark.parametrize(("h", "w", "exact"), [(200, 200, 0.45), (300, 400, 0.45), (100, 200, 0.41), (100, 1000, 0.1)])
def test_expected_sigma_by_hand(h: int, w: int, exact: float) -> None:
    # 1:2 -> a = 0.5: ((0.25 - 0.04) / 2 + 0.5 * 0.2) / 0.5 = 0.41; 1:10 -> a = 0.1 below 0.2: always the largest square
    assert F.expected_sigma(_sizes(h, w, 3)) == pytest.approx(exact)


def test_sampled_sigma_agrees_with_the_exact_value_within_its_standard_error() -> None:
    rng = np.random.default_rng(0)
    longer = rng.integers(150, 400, 5000)
    hw = np.stack([longer, (longer * rng.uniform(0.3, 1.0, 5000)).round()], axis=1)
    props = F.sigma_distribution(hw, draws_per_image=4, seed=3)
    se = props.std(ddof=1) / np.sqrt(len(props))
    assert abs(props.mean() - F.expected_sigma(hw)) < 4 * se
