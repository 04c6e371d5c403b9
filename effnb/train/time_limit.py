"""A training run's time limit: its schedule is re-planned to fit the minutes it was given.

A budget in minutes is a promise, and a short timing cannot keep it alone: this machine's speed swings by a fifth
within an hour. :class:`TimeLimit` holds what a run may spend (its epochs and their validation passes) and the
estimate its epochs were planned with. After each epoch, :meth:`TimeLimit.epochs_that_fit` scales that estimate
by how much slower (or faster) the last epochs ran than it said and returns the most real epochs whose projected
end stays inside the limit, up to ``longer`` times the planned epochs, so that minutes the cautious plan left over
still buy epochs. Every decision may go either way: under progressive resizing the first epochs are small, and
their fixed per-image costs (the data pipeline, Python) make them run slower against a FLOP-proportional estimate
than the large epochs will, so an early decision shortens too much; the later ones, measured on epochs of the
remaining sizes, give those minutes back. :func:`effnb.train.fit.fit` then ends the schedule there: the learning
rate still anneals to its end and the input size still reaches k_train, sooner or later.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from effnb.train.fit import TrainConfig

RECENT_EPOCHS = 5  # how many of the last epochs measure the slowdown (the machine's speed drifts within a run)


@dataclass(frozen=True)
class TimeLimit:
    """``seconds`` for a run's epochs and their validation passes; ``epoch_seconds(size)`` the planned estimate of
    one epoch at input size ``size``, its validation pass included; ``recent``: the last epochs that measure the
    slowdown (no decision before that many have run, so one slow first epoch cannot cut a run short); ``longer``:
    at most this many times the planned epochs, when the run is ahead (1: never longer than planned)."""

    seconds: float
    epoch_seconds: Callable[[int], float]
    recent: int = RECENT_EPOCHS
    longer: float = 1.0

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.recent < 1 or self.longer < 1:
            raise ValueError(f"a time limit needs seconds > 0, recent >= 1 and longer >= 1, got {self.seconds}, "
                             f"{self.recent} and {self.longer}")

    def slowdown(self, history: list[dict]) -> float:
        """Measured over planned seconds of the last ``recent`` epochs (below 1: faster than planned)."""
        recent = history[-self.recent:]
        planned = sum(self.epoch_seconds(row["size"]) for row in recent)
        return spent_seconds(recent) / planned if planned > 0 else 1.0

    def epochs_that_fit(self, config: TrainConfig, k_train: int, history: list[dict], planned: int | None = None) -> int:
        """The real epochs ``config`` (``len(history)`` of them done; ``planned`` epochs before any decision, default
        ``config.epochs``) should end at: the most, up to ``longer`` times ``planned``, whose rest is projected to
        end inside the limit, at least one more than done; ``config.epochs`` before ``recent`` epochs are done."""
        done, spent = len(history), spent_seconds(history)
        if done < self.recent:
            return config.epochs
        factor = self.slowdown(history)

        def projected(epochs: int) -> float:
            other = replace(config, epochs=epochs)
            return spent + factor * sum(self.epoch_seconds(other.epoch_plan(e, k_train)[0]) for e in range(done, epochs))

        most = max(int((planned or config.epochs) * self.longer), done + 1)
        for epochs in range(most, done, -1):
            if projected(epochs) <= self.seconds:
                return epochs
        return done + 1


def spent_seconds(history: list[dict]) -> float:
    """The seconds ``history``'s epochs took, their validation passes included."""
    return sum(row["seconds"] + row.get("val_seconds", 0.0) for row in history)

