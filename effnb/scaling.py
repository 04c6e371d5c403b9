"""The seed's compound-scaling rule and its (alpha, beta, gamma) grid search."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import replace

from effnb.model import NetSpec

SEED_GRID: list[tuple[float, float, float]] = [
    (1.2, 1.05, 1.23),
    (1.2, 1.23, 1.05),
    (1.4, 1.02, 1.17),
    (1.4, 1.05, 1.14),
    (1.4, 1.14, 1.05),
    (1.4, 1.17, 1.02),
]

# The seed's published grid results (test set, phi = 1), for side-by-side plots.
SEED_GRID_RESULTS: list[dict[str, float]] = [
    {"alpha": a, "beta": b, "gamma": g, "loss": loss, "accuracy": acc}
    for (a, b, g), (loss, acc) in zip(
        SEED_GRID,
        [
            (0.2581, 0.8909),
            (0.2846, 0.8788),
            (0.2623, 0.8909),
            (0.2659, 0.8795),
            (0.3356, 0.8564),
            (0.3230, 0.8558),
        ],
    )
]


def round_half_up(x: float) -> int:
    """Nearest integer, halves rounded up (2.5 -> 3, unlike Python's ``round``)."""
    return math.floor(x + 0.5)


def constraint(alpha: float, beta: float, gamma: float) -> float:
    """FLOPs multiplier per unit of phi: ``alpha * beta**2 * gamma**2``."""
    return alpha * beta**2 * gamma**2


def scale(spec: NetSpec, alpha: float, beta: float, gamma: float, phi: float) -> NetSpec:
    """Compound-scale ``spec`` by the seed's rules.

    Stages 1 and last are unchanged; stage 2 keeps its layer count but widens by
    beta**phi; other stages get ``round(L * alpha**phi)`` layers and
    ``round(c * beta**phi)`` channels; the resolution becomes ``round(r * gamma**phi)``.
    Rounding is half up.
    """
    if min(alpha, beta, gamma) < 1:
        raise ValueError(f"alpha, beta, gamma must be >= 1, got {(alpha, beta, gamma)}")
    if phi < 0:
        raise ValueError(f"phi must be >= 0, got {phi}")
    depth, width = alpha**phi, beta**phi
    first, *mid, last = spec.stages
    stages = [first]
    for i, s in enumerate(mid):
        layers = s.layers if i == 0 else round_half_up(s.layers * depth)
        stages.append(replace(s, layers=layers, channels=round_half_up(s.channels * width)))
    stages.append(last)
    return replace(
        spec,
        name=f"{spec.name}-phi{phi:g}",
        stages=tuple(stages),
        resolution=round_half_up(spec.resolution * gamma**phi),
    )


def grid_candidates(
    alphas: Iterable[float],
    betas: Iterable[float],
    gammas: Iterable[float],
    target: float = 2.0,
    tol: float = 0.1,
) -> list[tuple[float, float, float]]:
    """Sorted (alpha, beta, gamma) of the product grid with ``|constraint - target| <= tol``."""
    grid = itertools.product(alphas, betas, gammas)
    return sorted(c for c in grid if abs(constraint(*c) - target) <= tol + 1e-12)
