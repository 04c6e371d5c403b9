"""Recipes as data, and ``effnb train``'s option precedence: defaults < recipe < --config < flags."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

import effnb.train.experiments as experiments
from effnb.cli.commands import main
from effnb.study.profiles import PROFILES
from effnb.train.fit import TrainConfig
from effnb.train.recipes import RECIPES, Recipe, get_recipe

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_published_recipe_is_the_seed_study_authors_code():
    published = get_recipe("published")
    t = published.train
    assert (t.optimizer, t.lr, t.schedule, t.label_smoothing, published.batch_size, published.epochs) == \
        ("adam", 1e-3, "constant", 0.0, 64, 150)
    assert t.p_range == (0.2, 0.7)


def test_every_profile_names_a_known_recipe_and_cpu_uses_budget():
    assert all(p.recipe in RECIPES for p in PROFILES.values())
    assert PROFILES["cpu"].recipe == "budget" and PROFILES["full"].recipe == "published"


def test_unknown_recipe_and_unknown_field_are_refused():
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        get_recipe("fast")
    with pytest.raises(ValueError, match="unknown recipe field"):
        get_recipe("budget").with_changes(learning_rate=1)
    with pytest.raises(ValueError):
        get_recipe("budget").with_changes(p_range=(0.9, 0.1))


def test_train_config_carries_every_recipe_field():
    recipe = Recipe("r", "test", train=TrainConfig(epochs=0, optimizer="sgd", lr=0.1, weight_decay=0.01,
                                                   schedule="linear", label_smoothing=0.2, p_range=(0.3, 0.8),
                                                   ema_decay=0.99, bf16=True), epochs=3)
    assert recipe.train_config(64) == TrainConfig(epochs=3, lr=0.1, optimizer="sgd", weight_decay=0.01,
                                                  schedule="linear", label_smoothing=0.2, p_range=(0.3, 0.8),
                                                  ema_decay=0.99, bf16=True)
    assert recipe.train_config(64, epochs=5, lr=0.5).epochs == 5


def _old_train_config(flat: dict, k_train: int, epochs: float | None = None) -> TrainConfig:
    """Recipe.train_config as it was when a recipe copied TrainConfig's fields one by one from flat fields."""
    budget = flat["epochs"] if epochs is None else epochs
    base = TrainConfig(epochs=max(round(budget), 0), lr=flat["lr"], optimizer=flat["optimizer"],
                       weight_decay=flat["weight_decay"], schedule=flat["schedule"],
                       label_smoothing=flat["label_smoothing"], p_range=tuple(flat["p_range"]),
                       p_range_start=tuple(flat["p_range_start"]) if flat["p_range_start"] else None,
                       size_start=flat["size_start"], ema_decay=flat["ema_decay"], bf16=flat["bf16"])
    if base.size_start == 1.0 or budget == 0:
        return base
    candidates = [replace(base, epochs=n) for n in range(1, 4 * int(budget) + 2)]
    return min(candidates, key=lambda c: abs(c.equivalent_epochs(k_train) - budget))


_ONECYCLE_FLAT = {"name": "onecycle", "about": get_recipe("onecycle").about, "optimizer": "adamw", "lr": 2e-3,
                  "weight_decay": 0.05, "schedule": "onecycle", "epochs": 25, "batch_size": 64, "label_smoothing": 0.1,
                  "p_range": (0.2, 0.7), "p_range_start": None, "size_start": 1.0, "ema_decay": None, "bf16": False}
_OLD_FLAT = {  # Recipe.as_dict() of each recipe before the template: provenance and ablation keys hash it
    "published": {**_ONECYCLE_FLAT, "name": "published", "about": get_recipe("published").about, "optimizer": "adam", "lr": 1e-3,
             "weight_decay": 0.0, "schedule": "constant", "epochs": 150, "label_smoothing": 0.0},
    "onecycle": _ONECYCLE_FLAT,
    "budget": {**_ONECYCLE_FLAT, "name": "budget", "about": get_recipe("budget").about, "batch_size": 32, "weight_decay": 0.025,
               "p_range": (0.4, 0.9), "p_range_start": (0.6, 1.0), "size_start": 0.5},
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_template_recipe_matches_the_old_flat_recipe(name):
    recipe = RECIPES[name]
    assert set(_OLD_FLAT) == set(RECIPES)
    assert recipe.as_dict() == _OLD_FLAT[name]
    for k_train in (32, 64, 224):
        for epochs in (None, 0, 1, 3, 6.5, 25):
            assert recipe.train_config(k_train, epochs) == _old_train_config(_OLD_FLAT[name], k_train, epochs)


def test_with_changes_takes_flat_names_and_keeps_the_flat_dict():
    ref = get_recipe("onecycle")
    changed = ref.with_changes(lr=0.01, batch_size=16, p_range=[0.3, 0.8])
    assert changed.train.lr == 0.01 and changed.batch_size == 16 and changed.train.p_range == (0.3, 0.8)
    assert changed.as_dict() == {**_OLD_FLAT["onecycle"], "lr": 0.01, "batch_size": 16, "p_range": (0.3, 0.8)}
    assert changed.with_changes(lr=ref.train.lr, batch_size=64, p_range=(0.2, 0.7)) == ref


def test_progressive_recipe_spends_the_same_budget_in_more_cheaper_epochs():
    recipe = get_recipe("budget").with_changes(size_start=0.5, epochs=6)
    config = recipe.train_config(64)
    assert config.epochs > 6
    assert config.equivalent_epochs(64) == pytest.approx(6, abs=0.3)


# --- effnb train: flags > --config > recipe > defaults ---

@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_run(exp, cache, artifacts_dir, device="cpu", progress=True):
        seen["exp"] = exp
        return {"name": exp.name, "params": 1, "flops": 1, "train_seconds": 0.0, "checkpoint": "x",
                "train_config": exp.train.as_dict()}

    monkeypatch.setattr(experiments, "run_experiment", fake_run)
    return seen


def train(capsys, image_folder, tmp_path, *argv, config=None):
    args = ["train", "--profile", "smoke", "--data-dir", str(image_folder), "--artifacts-dir", str(tmp_path / "a")]
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config) if not isinstance(config, str) else config)
        args += ["--config", str(path)]
    code = main(args + list(argv))
    return code, capsys.readouterr().err


def test_train_uses_the_profiles_recipe_by_default(captured, capsys, image_folder, tmp_path):
    code, _ = train(capsys, image_folder, tmp_path)
    exp = captured["exp"]
    budget = get_recipe("budget")
    assert code == 0 and exp.train.lr == budget.train.lr and exp.train.schedule == budget.train.schedule
    assert exp.batch_size == budget.batch_size and exp.train.epochs == PROFILES["smoke"].selection.epochs


def test_recipe_then_config_then_flags(captured, capsys, image_folder, tmp_path):
    config = {"recipe": "published", "lr": 0.01, "batch_size": 16, "epochs": 3, "baseline": "A"}
    code, _ = train(capsys, image_folder, tmp_path, "--lr", "0.005", "--baseline", "C", "--resolution", "40",
                    config=config)
    exp = captured["exp"]
    assert code == 0
    assert exp.train.optimizer == "adam" and exp.train.schedule == "constant"  # from the recipe named in the config
    assert exp.batch_size == 16 and exp.train.epochs == 3  # the config over the recipe
    assert exp.train.lr == 0.005  # the flag over the config
    assert exp.spec.name.startswith("C") and exp.spec.resolution == 40  # a flag equal to the default still wins


@pytest.mark.parametrize("config, message", [
    ({"learning_rate": 0.1}, "unknown key(s) learning_rate"),
    ({"lr": "fast"}, "lr: must be a number"),
    ({"batch_size": 2.5}, "batch_size: not an integer"),
    ({"epochs": -1}, "epochs: must be a positive number"),
    ({"final": "yes"}, "final: must be true or false"),
    ({"baseline": "Z"}, "baseline: choose one of A, B, C"),
    ({"recipe": "fastest"}, "unknown recipe 'fastest'"),
    ("[1, 2]", "must hold one JSON object"),
    ("{not json", "cannot read --config"),
])
def test_bad_config_is_a_one_line_error(config, message, captured, capsys, image_folder, tmp_path):
    code, err = train(capsys, image_folder, tmp_path, config=config)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "exp" not in captured
