"""The ablation's statistics and its table, and one tiny end-to-end run on synthetic images."""
from __future__ import annotations

import json

import numpy as np
import pytest

from effnb.ablation import default_variants, mcnemar_exact, table, to_markdown, wilson
from effnb.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_mcnemar_is_an_exact_binomial_test_on_the_discordant_pairs():
    a = np.array([1] * 50 + [1] * 6 + [0] * 1 + [0] * 43, dtype=bool)
    b = np.array([1] * 50 + [0] * 6 + [1] * 1 + [0] * 43, dtype=bool)
    test = mcnemar_exact(a, b)
    assert (test["only_this"], test["only_reference"]) == (6, 1)
    assert test["p"] == pytest.approx(2 * (1 + 7) / 2 ** 7)  # two-sided P(X <= 1), X ~ Bin(7, 1/2)
    assert mcnemar_exact(a, a)["p"] == 1.0


def test_wilson_interval_contains_the_estimate_and_narrows_with_n():
    low, high = wilson(80, 100)
    assert low < 0.8 < high and (low, high) == pytest.approx((0.7112, 0.8666), abs=1e-3)
    assert wilson(800, 1000)[1] - wilson(800, 1000)[0] < high - low


def test_variants_change_one_lever_each_against_the_reference():
    variants = {v.name: v.recipe for v in default_variants(steps=1000)}
    ref = variants["onecycle"]
    assert variants["linear"].with_changes(schedule="onecycle") == ref
    assert variants["ema"].with_changes(ema_decay=None) == ref and variants["ema"].ema_decay == 0.99
    assert variants["batch32"].with_changes(batch_size=64) == ref


def test_table_marks_the_reference_and_tests_each_variant_against_it():
    rng = np.random.default_rng(0)
    def row(name, p):
        correct = {k: (rng.random(400) < p).astype(int).tolist() for k in ("train_res", "train_res_tta", "fixres", "fixres_tta")}
        return {"variant": name, "what": name, "equivalent_epochs": 4.0, "epochs": 4, "train_minutes": 1.0,
                "img_per_s": 100.0, "k_test": 125, "correct": correct}
    rows = table([row("onecycle", 0.6), row("better", 0.9)])
    assert rows[0]["fixres_vs_reference"]["p"] == 1.0 and rows[1]["fixres_vs_reference"]["p"] < 1e-6
    text = to_markdown(rows, "effnb ablate --epochs 4", "header")
    assert "effnb ablate --epochs 4" in text and text.count("\n| ") == 3


@pytest.mark.slow
def test_ablate_command_writes_the_table_and_reads_finished_variants_back(image_folder, tmp_path, capsys):
    args = ["ablate", "--profile", "smoke", "--data-dir", str(image_folder), "--artifacts-dir", str(tmp_path / "a"),
            "--epochs", "1", "--train-n", "40", "--recal-n", "16", "--reports-dir", str(tmp_path / "r"),
            "--only", "onecycle", "progressive"]
    assert main(args) == 0
    report = json.loads((tmp_path / "r" / "ablation.json").read_text())
    assert [r["variant"] for r in report["rows"]] == ["onecycle", "progressive"]
    assert "effnb ablate --profile smoke" in (tmp_path / "r" / "ablation.md").read_text()
    capsys.readouterr()
    assert main(args) == 0 and "[ablate]" not in capsys.readouterr().out  # nothing trained again
    assert main(args[:-2] + ["nonsense"]) == 2
