"""The ablation's statistics and its table, and one tiny end-to-end run on synthetic images."""
from __future__ import annotations

import json

import numpy as np
import pytest

from effnb.cli.commands import main
from effnb.nn.model import BASELINES
from effnb.study.ablation import default_variants, table, to_markdown

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_variants_change_one_lever_each_against_the_reference():
    variants = {v.name: v.recipe for v in default_variants(steps=1000)}
    ref = variants["onecycle"]
    assert variants["linear"].with_changes(schedule="onecycle") == ref
    assert variants["ema"].with_changes(ema_decay=None) == ref and variants["ema"].train.ema_decay == 0.99
    assert variants["batch32"].with_changes(batch_size=64) == ref


def test_table_marks_the_reference_and_tests_each_variant_against_it():
    rng = np.random.default_rng(0)
    def row(name, p):
        correct = {k: (rng.random(400) < p).astype(int).tolist() for k in ("train_res", "train_res_tta", "fixres", "fixres_tta")}
        return {"variant": name, "what": name, "equivalent_epochs": 4.0, "epochs": 4, "train_minutes": 1.0,
                "img_per_s": 100.0, "k_test": 125, "correct": correct}
    rows = table([row("onecycle", 0.6), row("better", 0.9)])
    assert "fixres_vs_reference" not in rows[0]
    better = rows[1]["fixres_vs_reference"]
    assert better["p_value"] < 1e-6 and better["difference_low"] > 0
    text = to_markdown(rows, "effnb ablate --epochs 4", "header")
    assert "effnb ablate --epochs 4" in text and text.count("\n| ") == 3 and "p = " in text


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


def test_phi_rows_train_the_scaled_network_for_the_minutes_of_phi_2():
    from effnb.study.ablation import PHI_COST, phi_variants
    from effnb.train.recipes import get_recipe

    rows = phi_variants(get_recipe("budget"), 11)
    assert [v.name for v in rows] == ["phi2", "phi1", "phi3", "phi0"]  # the reference first
    assert [v.spec.resolution for v in rows] == [97, 79, 119, 64]
    assert rows[-1].spec.content() == BASELINES["C"].content()  # phi = 0 is baseline C itself
    assert all(v.recipe == get_recipe("budget") for v in rows)
    minutes = [v.budget * PHI_COST[int(v.name[-1])] for v in rows]
    assert max(minutes) - min(minutes) < 0.1  # equal minutes, up to the rounding of the epochs


def test_the_default_phi_budget_is_the_minutes_of_the_profiles_final_model():
    from dataclasses import replace

    from effnb.study.ablation import phi2_budget
    from effnb.study.profiles import PROFILES

    cpu = PROFILES["cpu"]
    assert phi2_budget(replace(cpu, final=replace(cpu.final, phi=2, epochs=11))) == 11
    assert phi2_budget(replace(cpu, final=replace(cpu.final, phi=1, epochs=23))) == 11  # 23 x 0.48 = 11.04
    assert phi2_budget(replace(cpu, final=replace(cpu.final, phi=1, epochs=1))) == 1  # never zero
