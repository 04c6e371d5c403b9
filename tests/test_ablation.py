"""The ablation's statistics and its table, and one tiny end-to-end run on synthetic images."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from effnb.cli.commands import main
from effnb.nn.model import BASELINES
from effnb.study.ablation import table, to_markdown
from effnb.study.ablation_variants import default_variants

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
    assert better["adjusted_p"] == better["p_value"]  # one challenger: Holm changes nothing
    text = to_markdown(rows, "effnb ablate --epochs 4", "header")
    assert "effnb ablate --epochs 4" in text and text.count("\n| ") == 3 and "Holm p = " in text
    many = table([row("onecycle", 0.6), row("better", 0.9), row("same", 0.6), row("also", 0.6)])
    holm = [r["fixres_vs_reference"] for r in many[1:]]
    assert all(c["adjusted_p"] >= c["p_value"] for c in holm) and holm[0]["adjusted_p"] == 3 * holm[0]["p_value"]


def _phi_record(p_phi1: float, low_phi1: float = 0.001) -> dict:
    def versus(name, p, low, diff):
        return {"challenger": name, "incumbent": "phi2", "n": 4000, "challenger_accuracy": 0.89 + diff,
                "incumbent_accuracy": 0.89, "only_challenger": 177, "only_incumbent": 138, "p_value": p,
                "difference": diff, "difference_low": low, "difference_high": diff + 0.01, "adjusted_p": None}
    rows = [{"variant": "phi2", "budget": "11.13 eq. epochs (19 epochs)", "train min": 25.4, "fixres_accuracy": 0.89}]
    for name, p, low, diff in (("phi1", p_phi1, low_phi1, 0.01), ("phi3", 4e-5, -0.03, -0.02), ("phi0", 0.19, -0.003, 0.006)):
        rows.append({"variant": name, "budget": "22.85 eq. epochs (39 epochs)", "train min": 24.0,
                     "fixres_accuracy": 0.89 + diff, "fixres_vs_reference": versus(name, p, low, diff)})
    return {"command": "effnb ablate --profile cpu --phi --epochs 11", "budget": 11, "reference": "phi2", "rows": rows}


def test_the_phi_rule_is_holm_corrected_over_the_challengers():
    from effnb.study.ablation import phi_decision

    held = phi_decision(_phi_record(0.032))  # beyond the noise alone, not with Holm over three challengers
    assert held.chosen == "φ = 2" and not held.switched
    assert [round(c.adjusted_p, 3) for c in held.comparisons] == [0.064, 0.0, 0.19]
    assert "φ = 2, the φ whose minutes set the budget, stands" in held.sentence
    won = phi_decision(_phi_record(0.001))
    assert won.chosen == "φ = 1" and won.switched


def test_the_phi_records_provenance_is_checked_against_the_profile(tmp_path):
    from dataclasses import replace

    from effnb.study.ablation import check_phi_provenance, phi_points
    from effnb.study.profiles import PROFILES

    cpu = PROFILES["cpu"]
    path = tmp_path / "ablation-phi.json"
    path.write_text(json.dumps(_phi_record(0.032)))
    facts = {f["fact"]: f for f in check_phi_provenance(path, _phi_record(0.032),
                                                        replace(cpu, final=replace(cpu.final, phi=1, epochs=23)))}
    assert facts["profile"] == {"fact": "profile", "recorded": "cpu", "check": "this run's"}
    assert facts["budget at φ = 2"]["check"] == "this profile's final-model minutes"
    assert facts["machine"]["recorded"] == "not recorded" and facts["code"]["recorded"] == "no commit in the record"
    smoke = {f["fact"]: f for f in check_phi_provenance(path, _phi_record(0.032), PROFILES["smoke"])}
    assert smoke["profile"]["check"] == "not this run's `smoke`"
    points = phi_points(_phi_record(0.032), 14998, "φ = 2")
    assert [p.model for p in points] == ["φ = 2", "φ = 1", "φ = 3", "φ = 0"] and [p.chosen for p in points][0]
    assert all(p.low < p.accuracy < p.high and p.train_flops > 0 for p in points)


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
    # a fresh checkout: no artifacts, only the reports folder with the rows kept beside the table
    kept = sorted(p.name for p in (tmp_path / "r" / "ablation-rows").iterdir())
    assert [name.split("-")[0] for name in kept] == ["onecycle", "progressive"] and report["kept"] == "ablation-rows"
    shutil.rmtree(tmp_path / "a" / "ablation")
    assert main(args) == 0 and "[ablate]" not in capsys.readouterr().out  # read back from the reports folder
    assert json.loads((tmp_path / "r" / "ablation.json").read_text())["rows"] == report["rows"]
    assert sorted(p.name for p in (tmp_path / "a" / "ablation").glob("*.json")) == [] and kept == sorted(
        p.name for p in (tmp_path / "r" / "ablation-rows").iterdir())


def test_phi_rows_train_the_scaled_network_for_the_minutes_of_phi_2():
    from effnb.study.ablation_variants import PHI_COST, phi_variants
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

    from effnb.study.ablation_variants import phi2_budget
    from effnb.study.profiles import PROFILES

    cpu = PROFILES["cpu"]
    assert phi2_budget(replace(cpu, final=replace(cpu.final, phi=2, epochs=11))) == 11
    assert phi2_budget(replace(cpu, final=replace(cpu.final, phi=1, epochs=23))) == 11  # 23 x 0.48 = 11.04
    assert phi2_budget(replace(cpu, final=replace(cpu.final, phi=1, epochs=1))) == 1  # never zero


def test_final_rows_change_one_lever_each_of_the_studys_recipe():
    from effnb.study.ablation_variants import final_variants
    from effnb.train.recipes import get_recipe

    recipe = get_recipe("budget")
    rows = {v.name: v for v in final_variants(recipe, BASELINES["C"], steps=20000)}
    assert list(rows)[0] == "budget" and rows["budget"].recipe == recipe  # the reference first, unchanged
    assert rows["ema"].recipe.train.ema_decay == 0.9995 and rows["ema"].recipe.with_changes(ema_decay=None) == recipe
    assert rows["no-smoothing"].recipe.with_changes(label_smoothing=recipe.train.label_smoothing) == recipe
    assert rows["lr-half"].recipe.train.lr * 4 == rows["lr-double"].recipe.train.lr
    assert rows["wd-half"].recipe.train.weight_decay * 4 == rows["wd-double"].recipe.train.weight_decay
    low, high = recipe.train.p_range
    assert rows["crops-smaller"].recipe.train.p_range == (low / 2, high)
    assert rows["crops-larger"].recipe.train.p_range == ((low + 1) / 2, 1.0)
    assert all(v.spec == BASELINES["C"] for v in rows.values())


def test_the_final_budget_defaults_to_the_committed_plan_of_the_same_profile(tmp_path):
    from effnb.study.ablation_variants import planned_final_epochs
    from effnb.study.profiles import PROFILES

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"profile": "cpu", "final": {"epochs": 44}}))
    assert planned_final_epochs(PROFILES["cpu"], plan) == 44
    assert planned_final_epochs(PROFILES["smoke"], plan) == PROFILES["smoke"].final.epochs  # another profile's plan
    assert planned_final_epochs(PROFILES["cpu"], tmp_path / "none.json") == PROFILES["cpu"].final.epochs


def test_final_rules_are_stated_before_the_table_and_decided_after_it():
    from effnb.study.ablation import TTA_RULE, final_decisions, final_rule
    from effnb.train.recipes import get_recipe

    rng = np.random.default_rng(1)
    truth = rng.random(2000)
    def row(name, p, p_tta):
        correct = {"train_res": (truth < p).astype(int).tolist(), "train_res_tta": (truth < p).astype(int).tolist(),
                   "fixres": (truth < p).astype(int).tolist(), "fixres_tta": (truth < p_tta).astype(int).tolist()}
        return {"variant": name, "what": name, "equivalent_epochs": 44.0, "epochs": 75, "train_minutes": 70.0,
                "img_per_s": 200.0, "k_test": 106, "correct": correct}
    rules = [final_rule(get_recipe("budget")), TTA_RULE]
    summaries = [row("budget", 0.90, 0.92), row("ema", 0.93, 0.93), row("lr-half", 0.90, 0.90)]
    decisions = final_decisions(table(summaries, "budget"), summaries, rules)
    assert decisions["recipe"].chosen == "ema" and decisions["recipe"].switched
    assert decisions["tta"].chosen == "flip TTA" and decisions["tta"].switched
    held = final_decisions(table(summaries[::2], "budget"), summaries[::2], rules)
    assert held["recipe"].chosen == "budget" and not held["recipe"].switched
    # a winner among the rows run so far is held to Holm over every lever declared, the rest counted at p = 1
    close = [row("budget", 0.90, 0.92), row("ema", 0.90, 0.90)]
    ema = np.array(close[0]["correct"]["fixres"])
    ema[np.flatnonzero(ema == 0)[:60]], ema[np.flatnonzero(ema == 1)[:30]] = 1, 0  # 60 images won, 30 lost: p ~ 0.002
    close[1]["correct"]["fixres"] = ema.tolist()
    alone, declared = (final_decisions(table(close, "budget", family), close, rules, family) for family in (1, 200))
    assert alone["recipe"].switched and not declared["recipe"].switched
    assert "Holm over all 200 levers declared, the 199 not run yet counted at p = 1" in declared["recipe"].sentence
    text = to_markdown(table(summaries, "budget"), "effnb ablate --final", "header", [r.statement() for r in rules],
                       [d.sentence for d in decisions.values()], ["wd-half"])
    rule_at, table_at, decided_at = text.index("Decision rule"), text.index("| budget |"), text.index(decisions["recipe"].sentence)
    assert rule_at < table_at < decided_at and "Not run yet: `wd-half`" in text


def test_final_and_phi_are_two_ablations(capsys):
    assert main(["ablate", "--final", "--phi", "--data-dir", "/nonexistent"]) == 2
    assert "choose one" in capsys.readouterr().err
    assert main(["ablate", "--final", "--only", "onecycle", "--data-dir", "/nonexistent"]) == 2
    assert "choose from budget, ema" in capsys.readouterr().err
