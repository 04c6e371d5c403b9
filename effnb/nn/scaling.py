"""The seed's compound-scaling rule and its (alpha, beta, gamma) grid search."""

from __future__ import annotations

import math
import numbers
from dataclasses import replace

from effnb.nn.model import NetSpec, Scaling

MAX_FLOPS_FACTOR = 2.0**10  # the largest FLOPs growth scale() accepts: phi 10 at the seed's constraint 2


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
    Rounding is half up. The result records how it was made (``spec.scaling``) and says so in its name,
    e.g. ``C-a1.2-b1.05-g1.23-phi1``.
    Non-finite values, and a FLOPs growth above ``MAX_FLOPS_FACTOR``, are refused.
    """
    values = {"alpha": alpha, "beta": beta, "gamma": gamma, "phi": phi}
    not_numbers = [f"{k}={v!r}" for k, v in values.items() if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if not_numbers:
        raise ValueError(f"{', '.join(not_numbers)}: alpha, beta, gamma and phi must be numbers")
    not_finite = [f"{k}={v}" for k, v in values.items() if not math.isfinite(v)]
    if not_finite:
        raise ValueError(f"{', '.join(not_finite)}: alpha, beta, gamma and phi must be finite numbers")
    if min(alpha, beta, gamma) < 1:
        raise ValueError(f"alpha, beta, gamma must be >= 1, got {(alpha, beta, gamma)}")
    if phi < 0:
        raise ValueError(f"phi must be >= 0, got {phi}")
    if phi * math.log(constraint(alpha, beta, gamma)) > math.log(MAX_FLOPS_FACTOR):
        raise ValueError(f"phi={phi:g} with alpha, beta, gamma = {alpha:g}, {beta:g}, {gamma:g} multiplies the FLOPs by "
                         f"more than {MAX_FLOPS_FACTOR:.0f} (phi 10 at the seed's alpha*beta^2*gamma^2 = 2)")
    depth, width = alpha**phi, beta**phi
    first, *mid, last = spec.stages
    stages = [first]
    for i, s in enumerate(mid):
        layers = s.layers if i == 0 else round_half_up(s.layers * depth)
        stages.append(replace(s, layers=layers, channels=round_half_up(s.channels * width)))
    stages.append(last)
    return replace(
        spec,
        name=f"{spec.name}-a{alpha:g}-b{beta:g}-g{gamma:g}-phi{phi:g}",
        stages=tuple(stages),
        resolution=round_half_up(spec.resolution * gamma**phi),
        scaling=Scaling(spec.name, alpha, beta, gamma, phi),
    )
