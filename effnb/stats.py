"""Uncertainty of measured accuracies."""
from __future__ import annotations

from scipy.stats import binomtest


def accuracy_interval(accuracy: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy measured on ``n`` images, as fractions."""
    ci = binomtest(round(accuracy * n), n).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def format_accuracy(accuracy: float, n: int, level: float = 0.95) -> str:
    """``"63.00 % (95 % interval 60.9–65.1 %)"``: an accuracy in % with its interval."""
    low, high = accuracy_interval(accuracy, n, level)
    return f"{100 * accuracy:.2f} % ({100 * level:.0f} % interval {100 * low:.1f}–{100 * high:.1f} %)"
