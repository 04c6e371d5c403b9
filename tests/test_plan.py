"""The planner: a budget in minutes, planned from measured speed (synthetic throughputs), reused on resume."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import effnb.study.budget as budget
import effnb.study.plan as plan_module
from effnb.nn.model import BASELINES
from effnb.study.plan import (
    MARGIN,
    CostModel,
    Counts,
    PlanError,
    Timing,
    apply_plan,
    describe_plan,
    final_epochs,
    gflops,
    load_plan,
    make_plan,
    planned_against_actual,
    time_steps,
    write_plan,
)
from effnb.study.profiles import get_profile
from effnb.train.recipes import get_recipe

CPU = get_profile("cpu")
RECIPE = get_recipe(CPU.recipe)
COUNTS = Counts.of(CPU, n_train=14_998, n_test=4000, n_test2=4000)


def machine(img_s_at_c: float) -> CostModel:
    """A synthetic machine: 30 % of an image's cost fixed, 70 % growing with FLOPs; baseline C trains at
    ``img_s_at_c`` and evaluates four times as fast."""
    g = gflops(BASELINES["C"])
    a, b = 0.3 / img_s_at_c, 0.7 / (img_s_at_c * g)
    return CostModel(train_a=a, train_b=b, eval_a=a / 4, eval_b=b / 4)


def test_cost_model_recovers_a_line_from_timings():
    timings = [Timing("x", s, g, 1 / (0.002 + 0.05 * g), 1 / (0.001 + 0.01 * g)) for s, g in ((32, 0.01), (64, 0.04))]
    model = CostModel.fit(timings)
    assert model.train_a == pytest.approx(0.002) and model.train_b == pytest.approx(0.05)
    assert model.eval_seconds(0.04, 100) == pytest.approx(100 * (0.001 + 0.01 * 0.04))
    flat = CostModel.fit([Timing("x", 64, 0.04, 100.0, 400.0)])  # one FLOPs value: a constant
    assert flat.train_b == 0 and flat.train_seconds(9.0, 100) == pytest.approx(1.0)


@pytest.mark.parametrize("img_s", [100.0, 150.0, 300.0, 600.0], ids=["slow", "laptop", "xeon", "fast"])
def test_the_plan_never_goes_past_the_budget(img_s):
    plan = make_plan(CPU, RECIPE, machine(img_s), COUNTS, 120, spent_seconds=90)
    minutes = plan["planned_minutes"]
    assert set(minutes) == {"01_data", "02_baselines", "03_grid", "04_scaling", "05_finetune", "06_final"}
    assert sum(minutes.values()) <= 120 * (1 - MARGIN) + 1e-6
    assert plan["final"]["minutes"] > 0 and plan["final"]["epochs"] is None


def test_a_slower_machine_gives_selection_fewer_epochs_and_the_final_model_fewer_minutes():
    slow, fast = (make_plan(CPU, RECIPE, machine(img_s), COUNTS, 120) for img_s in (100.0, 600.0))
    assert fast["selection"] == {"halving_rungs": [1], "epochs": CPU.selection.epochs}
    assert slow["selection"]["epochs"] < CPU.selection.epochs
    assert slow["final"]["minutes"] < fast["final"]["minutes"]


def test_a_budget_too_small_is_refused_with_the_minutes_it_needs():
    with pytest.raises(PlanError, match=r"--budget-minutes 5 is too small .* at least \d+ minutes"):
        make_plan(CPU, RECIPE, machine(150.0), COUNTS, 5)


@pytest.mark.parametrize("seconds", [600.0, 1800.0])
def test_final_epochs_are_the_most_that_fit(seconds, monkeypatch):
    model, spec = machine(150.0), BASELINES["C"]
    epochs = final_epochs(model, RECIPE, spec, COUNTS.train, seconds)

    def cost(e: int) -> float:
        return model.run_seconds(RECIPE.train_config(spec.resolution, e), spec.resolution, gflops(spec), COUNTS.train)

    assert cost(epochs) <= seconds < cost(epochs + 1)
    assert final_epochs(machine(75.0), RECIPE, spec, COUNTS.train, seconds) < epochs  # a slower machine, fewer
    monkeypatch.setattr(plan_module, "MAX_FINAL_EPOCHS", 12)
    assert final_epochs(model, RECIPE, spec, 10, 1e9) == 12  # never more than the cap


def test_the_final_epochs_pay_for_a_validation_pass_after_each_epoch():
    model, spec, seconds = machine(150.0), BASELINES["C"], 1800.0
    with_validation = final_epochs(model, RECIPE, spec, COUNTS.train, seconds, n_eval=COUNTS.decision)
    assert with_validation < final_epochs(model, RECIPE, spec, COUNTS.train, seconds)
    config = RECIPE.train_config(spec.resolution, with_validation)
    g = gflops(spec)
    cost = (model.run_seconds(config, spec.resolution, g, COUNTS.train)
            + model.eval_seconds(g, COUNTS.decision) * (config.epochs + 1))
    assert cost <= seconds


def test_apply_plan_sets_the_epochs_and_checks_the_profile():
    plan = make_plan(CPU, RECIPE, machine(100.0), COUNTS, 120)
    planned = apply_plan(CPU, plan)
    assert planned.selection.epochs == plan["selection"]["epochs"] and planned.final.epochs == CPU.final.epochs
    plan["final"] |= {"epochs": 31}
    assert apply_plan(CPU, plan).final.epochs == 31
    with pytest.raises(PlanError, match="for profile 'cpu', not 'smoke'"):
        apply_plan(get_profile("smoke"), plan)


def test_plans_read_back_and_damaged_ones_are_named(tmp_path):
    plan = make_plan(CPU, RECIPE, machine(150.0), COUNTS, 120)
    assert load_plan(write_plan(tmp_path, plan)) == json.loads(json.dumps(plan))
    (tmp_path / "bad.json").write_text('{"format": 1')
    with pytest.raises(PlanError, match="bad.json is not a plan"):
        load_plan(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({**plan, "format": 0}))
    with pytest.raises(PlanError, match="plan format 0"):
        load_plan(tmp_path / "old.json")
    assert "Budget 120 min" in describe_plan(plan)
    rows = planned_against_actual(plan, {"01_data": 60.0})
    assert rows[0]["actual min"] == 1.0 and rows[1]["actual min"] is None and rows[-1]["actual min"] is None
    assert rows[-1]["planned min"] == pytest.approx(sum(plan["planned_minutes"].values()), abs=0.1)
    assert all("re-planned in 04 min" not in row for row in rows)  # the final epochs are not fixed yet


def test_04_is_measured_against_the_minutes_it_was_re_planned_with():
    plan = make_plan(CPU, RECIPE, machine(150.0), COUNTS, 120)
    plan |= {"planning_seconds": 60.0}
    plan["final"] |= {"epochs": 40, "elapsed_seconds": 60.0 + 600.0 + 30.0, "seconds_left": 3000.0}
    actual = {"01_data": 60.0, "02_baselines": 240.0, "03_grid": 300.0, "04_scaling": 3060.0}
    rows = {row["notebook"]: row for row in planned_against_actual(plan, actual)}
    assert rows["04_scaling"]["re-planned in 04 min"] == pytest.approx((30.0 + 3000.0) / 60, abs=0.05)
    assert rows["03_grid"]["re-planned in 04 min"] is None and rows["04_scaling"]["actual min"] == 51.0


class FakeStudy:
    def __init__(self, cache, artifacts_dir):
        self.cache, self.artifacts_dir, self.profile, self.recipe = cache, artifacts_dir, CPU, RECIPE
        self.splits = {"train": np.arange(len(cache)), "test": np.arange(10)}
        self.device = "cpu"

    def split_indices(self, name):
        return np.arange(10)


def test_a_resumed_run_reuses_its_plan_without_timing(small_cache, tmp_path, monkeypatch):
    study = FakeStudy(small_cache, tmp_path)
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: [Timing("C", 64, gflops(BASELINES["C"]), 150.0, 600.0),
                                                                Timing("C", 32, gflops(BASELINES["C"], 32), 400.0, 1500.0)])
    first = budget.ensure_plan(study, 120)
    assert (tmp_path / "plan.json").is_file() and study.profile.selection.epochs == first["selection"]["epochs"]
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: pytest.fail("a resumed run timed the step again"))
    assert budget.ensure_plan(FakeStudy(small_cache, tmp_path), 120) == first
    assert budget.ensure_plan(FakeStudy(small_cache, tmp_path), None) == first


def test_the_final_epochs_are_fixed_once_and_reused(small_cache, tmp_path, monkeypatch):
    study = FakeStudy(small_cache, tmp_path)
    monkeypatch.setattr(budget, "counts_of", lambda _: COUNTS)  # the cpu study's image counts, not the tiny cache's
    timings = [Timing("C", 64, gflops(BASELINES["C"]), 150.0, 600.0)]
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: timings)
    budget.ensure_plan(study, 120)
    epochs = budget.fix_final_epochs(study, BASELINES["C"])
    assert epochs >= 1 and study.profile.final.epochs == epochs
    saved = json.loads((tmp_path / "plan.json").read_text())["final"]
    assert saved["epochs"] == epochs and saved["network"] == "C"
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: pytest.fail("the final model was timed again"))
    assert budget.fix_final_epochs(FakeStudy(small_cache, tmp_path), BASELINES["C"]) == epochs


def test_the_final_model_is_held_to_the_estimate_that_fixed_its_epochs(small_cache, tmp_path, monkeypatch):
    study, spec = FakeStudy(small_cache, tmp_path), BASELINES["C"]
    monkeypatch.setattr(budget, "counts_of", lambda _: COUNTS)
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: [Timing("C", 32, gflops(spec, 32), 600.0, 2400.0),
                                                                Timing("C", 64, gflops(spec), 300.0, 1200.0)])
    budget.ensure_plan(study, 120)
    assert budget.final_time_limit(study, spec) is None  # epochs not fixed yet
    epochs = budget.fix_final_epochs(study, spec)
    final = json.loads((tmp_path / "plan.json").read_text())["final"]
    limit = budget.final_time_limit(FakeStudy(small_cache, tmp_path), spec)  # a resumed run: rebuilt from the plan
    model = CostModel(**final["cost_model"])
    validation = model.eval_seconds(gflops(spec), COUNTS.decision)
    assert limit.seconds == pytest.approx(final["seconds_left"] - validation)
    assert limit.epoch_seconds(32) == pytest.approx(model.train_seconds(gflops(spec, 32), COUNTS.train) + validation,
                                                     rel=0.01)  # FLOPs scale with the pixels
    config = RECIPE.train_config(spec.resolution, epochs)
    planned = sum(limit.epoch_seconds(config.epoch_plan(e, spec.resolution)[0]) for e in range(config.epochs))
    assert planned <= limit.seconds  # on plan, the limit holds the fixed epochs
    with pytest.raises(PlanError, match="fixed for C, not A"):
        budget.final_time_limit(study, BASELINES["A"])


def _history(folder, rows: list[tuple[int, float]]) -> None:
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"history": [{"size": k, "img_per_s": v} for k, v in rows]}))


def test_the_slower_of_the_timed_step_and_the_selections_epochs_sets_the_final_epochs(small_cache, tmp_path,
                                                                                     monkeypatch):
    study = FakeStudy(small_cache, tmp_path)
    monkeypatch.setattr(budget, "counts_of", lambda _: COUNTS)
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: [Timing("C", 32, gflops(BASELINES["C"], 32), 600.0, 2400.0),
                                                                Timing("C", 64, gflops(BASELINES["C"]), 300.0, 1200.0)])
    budget.ensure_plan(study, 120)
    experiments = tmp_path / "experiments"
    _history(experiments / "C-0123456789ab", [(32, 300.0), (48, 200.0), (64, 150.0)])  # epochs at half the speed
    _history(experiments / "C-bn_recal-0123456789ab", [(64, 1.0)])  # another run's folder: not this network's epochs
    _history(experiments / "C-a1.2-b1.05-g1.23-phi1-0123456789ab", [(79, 1.0)])
    assert [t.size for t in budget.trained_speeds(tmp_path, BASELINES["C"])] == [32, 48, 64]
    epochs = budget.fix_final_epochs(study, BASELINES["C"])
    by = json.loads((tmp_path / "plan.json").read_text())["final"]["epochs_by_estimate"]
    assert by["trained"] < by["timed"] and epochs == by["trained"]
    assert "the selection's whole epochs of it" in describe_plan(json.loads((tmp_path / "plan.json").read_text()))


def test_without_a_plan_the_profile_epochs_apply(small_cache, tmp_path):
    study = FakeStudy(small_cache, tmp_path)
    assert budget.ensure_plan(study, None) is None
    assert budget.fix_final_epochs(study, BASELINES["C"]) == CPU.final.epochs


def test_timing_the_real_step_on_tiny_data(small_cache):
    spec = replace(BASELINES["C"], resolution=32)
    timings = time_steps(small_cache, [spec], replace(RECIPE, batch_size=8), np.arange(len(small_cache)), batches=2)
    assert [t.size for t in timings] == [16, 32]
    assert all(t.train_img_s > 0 and t.eval_img_s > 0 for t in timings)
    assert timings[0].gflops < timings[1].gflops


def test_the_run_line_does_not_quote_the_profiles_final_epochs_before_the_plan_fixes_them():
    planned = CPU.summary(final_planned=True)
    assert f"phi={CPU.final.phi}, {CPU.final.epochs:g} equivalent epochs" not in planned
    assert "equivalent epochs fixed by the plan in 04" in planned
    assert f"phi={CPU.final.phi}, {CPU.final.epochs:g} equivalent epochs" in CPU.summary()
