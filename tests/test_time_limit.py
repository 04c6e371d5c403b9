"""A run's time limit: a run that falls behind shortens its schedule to fit, and a resumed run keeps the new length."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from effnb.train.experiments import run_experiment
from effnb.train.fit import TrainConfig, make_optimizer, make_scheduler
from effnb.train.time_limit import TimeLimit, spent_seconds
from test_engine import assert_same_weights, interrupt_after, tiny_experiment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIG = TrainConfig(epochs=20, size_start=0.5)
K = 64


def epoch_cost(size: int) -> float:
    """A planned epoch: 60 s at k_train, the rest in proportion to the pixels, plus 5 s of validation."""
    return 60.0 * (size / K) ** 2 + 5.0


def planned_total(config: TrainConfig) -> float:
    return sum(epoch_cost(config.epoch_plan(e, K)[0]) for e in range(config.epochs))


def history(config: TrainConfig, done: int, slowdown: float) -> list[dict]:
    """``done`` epochs of ``config`` that ran ``slowdown`` times as long as planned (5 s of each in validation)."""
    rows = []
    for e in range(done):
        size = config.epoch_plan(e, K)[0]
        rows.append({"size": size, "seconds": slowdown * (epoch_cost(size) - 5.0), "val_seconds": slowdown * 5.0})
    return rows


def test_a_run_on_plan_keeps_its_epochs():
    limit = TimeLimit(planned_total(CONFIG) * 1.001, epoch_cost)
    assert limit.epochs_that_fit(CONFIG, K, history(CONFIG, 8, 1.0)) == CONFIG.epochs
    assert limit.epochs_that_fit(CONFIG, K, history(CONFIG, 8, 0.5)) == CONFIG.epochs  # faster: never longer


def test_a_run_ahead_lengthens_to_the_most_that_fit_up_to_longer_times_its_epochs():
    limit = TimeLimit(planned_total(CONFIG), epoch_cost, longer=1.5)
    first = history(CONFIG, 5, 0.7)
    epochs = limit.epochs_that_fit(CONFIG, K, first)
    assert CONFIG.epochs < epochs <= 30  # 1.5 x 20

    def projected(n: int) -> float:
        longer = dataclasses.replace(CONFIG, epochs=n)
        return spent_seconds(first) + 0.7 * sum(epoch_cost(longer.epoch_plan(e, K)[0]) for e in range(5, n))

    assert projected(epochs) <= limit.seconds and (epochs == 30 or projected(epochs + 1) > limit.seconds)
    assert limit.epochs_that_fit(CONFIG, K, history(CONFIG, 5, 0.1)) == 30  # far ahead: capped at 1.5 x
    assert limit.epochs_that_fit(CONFIG, K, history(CONFIG, 6, 0.7)) > CONFIG.epochs  # later decisions too
    shortened = dataclasses.replace(CONFIG, epochs=12)  # an earlier decision shortened it: the cap is still 1.5 x 20
    assert limit.epochs_that_fit(shortened, K, history(CONFIG, 8, 0.1), planned=CONFIG.epochs) == 30
    with pytest.raises(ValueError, match="longer >= 1"):
        TimeLimit(1.0, epoch_cost, longer=0.5)


@pytest.mark.parametrize("slowdown", [1.2, 1.6])
def test_a_run_behind_ends_sooner_at_the_most_epochs_that_fit(slowdown):
    limit = TimeLimit(planned_total(CONFIG), epoch_cost)
    done = history(CONFIG, 8, slowdown)
    epochs = limit.epochs_that_fit(CONFIG, K, done)
    assert 8 < epochs < CONFIG.epochs

    def projected(n: int) -> float:
        shorter = dataclasses.replace(CONFIG, epochs=n)
        return spent_seconds(done) + slowdown * sum(epoch_cost(shorter.epoch_plan(e, K)[0]) for e in range(8, n))

    assert projected(epochs) <= limit.seconds < projected(epochs + 1)
    assert limit.slowdown(done) == pytest.approx(slowdown)


def test_no_decision_before_the_recent_epochs_and_at_least_one_epoch_more():
    limit = TimeLimit(1.0, epoch_cost)  # already far behind
    assert limit.epochs_that_fit(CONFIG, K, history(CONFIG, 4, 3.0)) == CONFIG.epochs  # fewer than 5 epochs seen
    assert limit.epochs_that_fit(CONFIG, K, history(CONFIG, 5, 3.0)) == 6
    with pytest.raises(ValueError, match="seconds > 0"):
        TimeLimit(0.0, epoch_cost)


def test_a_run_whose_small_first_epochs_ran_slow_gets_the_minutes_of_its_early_cut_back():
    """Fixed per-image costs make the first, small epochs of progressive resizing slow against a FLOP-proportional
    estimate (1.25 times it at half size) and the last ones fast (0.94 times at k_train): the first decision cuts the
    run, the later ones, measured on larger epochs, lengthen it again, and it ends inside its limit, nearly all used."""
    config = TrainConfig(epochs=40, size_start=0.5)
    limit = TimeLimit(planned_total(config), epoch_cost, longer=1.5)
    rows, decisions = [], []
    while len(rows) < config.epochs:
        size = config.epoch_plan(len(rows), K)[0]
        rows.append({"size": size, "seconds": 8.0 + 0.8 * (epoch_cost(size) - 5.0), "val_seconds": 5.0})
        if len(rows) < config.epochs:
            config = dataclasses.replace(config, epochs=limit.epochs_that_fit(config, K, rows, planned=40))
            decisions.append(config.epochs)
    first_cut = decisions[limit.recent - 1]
    assert first_cut < 40 and max(decisions[limit.recent:]) > first_cut
    assert 0.97 * limit.seconds <= spent_seconds(rows) <= limit.seconds


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "linear"])
def test_a_schedule_rebuilt_midway_stands_where_stepping_it_would(schedule):
    config = TrainConfig(epochs=4, schedule=schedule)
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt, stepped = make_optimizer(params, config, steps_per_epoch=5)
    for _ in range(7):
        opt.step()
        stepped.step()
    rebuilt = make_scheduler(opt, config, steps_per_epoch=5, done_steps=7)
    assert rebuilt.get_last_lr() == pytest.approx(stepped.get_last_lr())


def slow_everywhere() -> TimeLimit:
    """A limit every real epoch falls far behind, judged from the last epoch: the first one cuts the run to two."""
    return TimeLimit(1e-3, lambda size: 1e-9, recent=1)


def test_fit_shortens_a_run_behind_its_limit_and_still_ends_its_schedule(small_cache, tmp_path):
    exp = tiny_experiment(small_cache, epochs=4, train_options=dict(size_start=0.5))
    result = run_experiment(exp, small_cache, tmp_path, progress=False, time_limit=slow_everywhere())
    sizes = [row["size"] for row in result["history"]]
    assert result["replanned_to"] == 2 and len(sizes) == 2 and result["history"][0]["replanned_to"] == 2
    assert sizes == [exp.spec.resolution // 2, exp.spec.resolution]  # the shortened schedule still reaches k_train
    assert result["history"][-1]["lr"] < 0.05 * exp.train.lr  # and the one-cycle learning rate its end (mid-way: ~0.5)
    assert all("val_seconds" in row for row in result["history"])
    unlimited = run_experiment(tiny_experiment(small_cache, epochs=1), small_cache, tmp_path, progress=False)
    assert unlimited["replanned_to"] is None


def test_fit_lengthens_a_run_ahead_of_its_limit_and_still_ends_its_schedule(small_cache, tmp_path, monkeypatch):
    exp = tiny_experiment(small_cache, epochs=4, train_options=dict(size_start=0.5))
    ahead = TimeLimit(1e6, lambda size: 1e3, recent=1, longer=1.5)  # every epoch far ahead of its estimate
    result = run_experiment(exp, small_cache, tmp_path / "a", progress=False, time_limit=ahead)
    sizes = [row["size"] for row in result["history"]]
    assert result["replanned_to"] == 6 and len(sizes) == 6 and result["history"][0]["replanned_to"] == 6
    assert sizes[0] == exp.spec.resolution // 2 and sizes[-1] == exp.spec.resolution
    assert result["history"][-1]["lr"] < 0.05 * exp.train.lr  # the lengthened one-cycle still anneals to its end
    interrupt_after(2, exp, small_cache, tmp_path / "b", monkeypatch, time_limit=ahead)
    resumed = run_experiment(exp, small_cache, tmp_path / "b", progress=False)  # the saved length holds
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4, 5, 6]
    assert_same_weights(result["checkpoint"], resumed["checkpoint"])


def test_a_shortened_run_resumes_with_its_new_length(small_cache, tmp_path, monkeypatch):
    exp = tiny_experiment(small_cache, epochs=4, train_options=dict(size_start=0.5))
    straight = run_experiment(exp, small_cache, tmp_path / "a", progress=False, time_limit=slow_everywhere())
    assert straight["replanned_to"] == 2
    interrupt_after(1, exp, small_cache, tmp_path / "b", monkeypatch, time_limit=slow_everywhere())
    resumed = run_experiment(exp, small_cache, tmp_path / "b", progress=False)  # no limit given: the saved length holds
    assert resumed["replanned_to"] == 2 and [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert_same_weights(straight["checkpoint"], resumed["checkpoint"])
