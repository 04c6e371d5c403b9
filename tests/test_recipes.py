"""Recipes as data, and ``effnb train``'s option precedence: defaults < recipe < --config < flags."""
from __future__ import annotations

import json

import pytest

import effnb.train.experiments as experiments
from effnb.cli.commands import main
from effnb.study.profiles import PROFILES
from effnb.train.fit import TrainConfig
from effnb.train.recipes import RECIPES, Recipe, get_recipe

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_seed_recipe_is_the_authors_published_code():
    seed = get_recipe("seed")
    assert (seed.optimizer, seed.lr, seed.schedule, seed.label_smoothing, seed.batch_size, seed.epochs) == \
        ("adam", 1e-3, "constant", 0.0, 64, 150)
    assert seed.p_range == (0.2, 0.7)


def test_every_profile_names_a_known_recipe_and_cpu_uses_budget():
    assert all(p.recipe in RECIPES for p in PROFILES.values())
    assert PROFILES["cpu"].recipe == "budget" and PROFILES["full"].recipe == "seed"


def test_unknown_recipe_and_unknown_field_are_refused():
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        get_recipe("fast")
    with pytest.raises(ValueError, match="unknown recipe field"):
        get_recipe("budget").with_changes(learning_rate=1)
    with pytest.raises(ValueError):
        get_recipe("budget").with_changes(p_range=(0.9, 0.1))


def test_train_config_carries_every_recipe_field():
    recipe = Recipe("r", "test", optimizer="sgd", lr=0.1, weight_decay=0.01, schedule="linear", epochs=3,
                    label_smoothing=0.2, p_range=(0.3, 0.8), ema_decay=0.99, bf16=True)
    assert recipe.train_config(64) == TrainConfig(epochs=3, lr=0.1, optimizer="sgd", weight_decay=0.01,
                                                  schedule="linear", label_smoothing=0.2, p_range=(0.3, 0.8),
                                                  ema_decay=0.99, bf16=True)
    assert recipe.train_config(64, epochs=5, lr=0.5).epochs == 5


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
    assert code == 0 and exp.train.lr == budget.lr and exp.train.schedule == budget.schedule
    assert exp.batch_size == budget.batch_size and exp.train.epochs == PROFILES["smoke"].select_epochs


def test_recipe_then_config_then_flags(captured, capsys, image_folder, tmp_path):
    config = {"recipe": "seed", "lr": 0.01, "batch_size": 16, "epochs": 3, "baseline": "A"}
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
