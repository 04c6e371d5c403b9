"""Interleaved timing for ``effnb bench``: measurements take turns within each round, so their ratios hold on a
noisy machine."""
from __future__ import annotations

import statistics
from collections.abc import Callable


def _rounds(measurements: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each measurement's value in each of ``rounds`` rounds, the measurements taking turns within each round."""
    values: dict[str, list[float]] = {name: [] for name in measurements}
    for _ in range(rounds):
        for name, measure in measurements.items():
            values[name].append(measure())
    return values


def interleaved(measurements: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of each measurement over ``rounds`` rounds, the measurements taking turns within each round."""
    return {name: statistics.median(v) for name, v in _rounds(measurements, rounds).items()}


def interleaved_ratios(measurements: dict[str, Callable[[], float]], references: dict[str, str],
                       rounds: int) -> dict[str, tuple[float, float, float, float]]:
    """Interleaved rounds; per measurement its median value and the median, lowest and highest of its ratio to its
    reference (``references[name]``, itself by default) measured in the same round."""
    values = _rounds(measurements, rounds)
    out = {}
    for name, v in values.items():
        ratios = [a / b for a, b in zip(v, values[references.get(name, name)])]
        out[name] = (statistics.median(v), statistics.median(ratios), min(ratios), max(ratios))
    return out
