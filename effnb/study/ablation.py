"""``effnb ablate``: what each training lever is worth at one fixed CPU budget, on the same images and seed.

Every variant trains the same network on the same training images with the same seed, for the same
budget in *equivalent epochs* (epochs x (size / k_train)^2, so a cost that CPU contention cannot bias),
through the resumable :class:`~effnb.train.experiments.Experiment` machinery. Each is then evaluated on the
``test`` split (never ``test2``) at the training resolution, with and without horizontal-flip TTA, and at
its FixRes resolution after BN recalibration (the cheap FixRes step; the study uses FixRes), with Wilson
95 % intervals and an exact McNemar test against the reference variant on the same images.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from effnb.data.fixres import estimate_sigma, recommended_test_resolution
from effnb.data.splits import subset
from effnb.nn.flops import count_flops
from effnb.nn.model import BASELINES
from effnb import seed_study
from effnb.nn.scaling import scale
from effnb.study.compute import ComputePoint
from effnb.study.context import Study
from effnb.study.profiles import Profile
from effnb.study.ablation_variants import (PHI_REFERENCE, REFERENCE, Variant, default_variants, phi2_budget,
                                           final_network, final_variants, phi_variants, planned_final_epochs)
from effnb.study.holdout import code_version
from effnb.study.stats import (TTA_RULE, Decision, DecisionRule, PairedComparison, accuracy_interval, compare_paired,
                               decide_tta, holm_adjust)
from effnb.train.checkpoint import load_checkpoint
from effnb.train.experiments import Experiment, run_experiment
from effnb.train.feed import Feed
from effnb.train.inference import predict
from effnb.train.recipes import Recipe, get_recipe
from effnb.utils.atomic import write_json
from effnb.utils.correct import pack_correct, unpack_correct

PHI_RECORD = Path(__file__).resolve().parents[2] / "reports" / "ablation-phi.json"  # the committed `effnb ablate --phi`


def _correct(model: torch.nn.Module, feed: Feed, device, tta: bool = False) -> np.ndarray:
    logits, labels = predict(model, feed, device, progress=False, tta=tta)
    return (logits.argmax(1) == labels).numpy()


def evaluate_variant(study: Study, variant: Variant, budget: float, train_n: int | None = None, recal_n: int = 1000,
                     device: torch.device | str = "cpu", progress: bool = True, kept_dir: str | Path | None = None) -> dict:
    """Train ``variant`` (or read it back) on ``train_n`` training images (None: all) and evaluate it on the test
    split; BN statistics are recalibrated at the FixRes size on ``recal_n`` of them. The evaluation is kept in
    ``<artifacts>/ablation/<variant>-<key>.json``, the key a hash of everything that determines it, and under the
    same name in ``kept_dir`` (committed beside the table, so that a fresh checkout reads finished rows back too).
    """
    spec, budget = variant.spec, variant.budget or budget
    k_train = spec.resolution
    recipe = variant.recipe
    train = recipe.train_config(k_train, budget)
    train_idx = subset(study.splits["train"], train_n, study.seed)
    identity = json.dumps([recipe.as_dict(), spec.to_dict(), budget, len(train_idx), recal_n, study.seed, study.data_key],
                          sort_keys=True, default=str)
    file_name = f"{variant.name}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}.json"
    summary_path = Path(study.artifacts_dir) / "ablation" / file_name
    kept = Path(kept_dir) / file_name if kept_dir is not None else None
    for found in (summary_path, kept):
        if found is not None and found.is_file():
            summary = json.loads(found.read_text())
            if kept is not None and not kept.is_file():
                write_json(kept, summary)
            return summary
    exp = Experiment(name=f"ablate-{variant.name}", spec=spec, train=train, train_indices=tuple(train_idx.tolist()),
                     batch_size=recipe.batch_size, seed=study.seed, data_key=study.data_key)
    if progress:
        print(f"[ablate] {variant.name}: {train.epochs} epochs = {train.equivalent_epochs(k_train):.2f} equivalent "
              f"epochs at {k_train} px, batch {recipe.batch_size}", flush=True)
    result = run_experiment(exp, study.cache, study.artifacts_dir, device, progress)
    test = study.splits["test"]
    model, _ = load_checkpoint(result["checkpoint"])
    at_train = Feed(study.cache, test, k_train, "eval")
    plain, flipped = _correct(model, at_train, device), _correct(model, at_train, device, tta=True)
    sigma = estimate_sigma(study.cache.hw[train_idx], train.p_range, seed=study.seed)
    k_test, k_image = recommended_test_resolution(k_train, sigma)
    recal = Experiment(name=f"ablate-{variant.name}-bn_recal", kind="bn_recal", spec=spec, train=train, k_test=k_test,
                       train_indices=tuple(subset(train_idx, recal_n, study.seed).tolist()),
                       init=result["checkpoint"], batch_size=recipe.batch_size, seed=study.seed,
                       data_key=study.data_key)
    recal_model, _ = load_checkpoint(run_experiment(recal, study.cache, study.artifacts_dir, device, progress)["checkpoint"])
    at_fixres = Feed(study.cache, test, k_test, "eval", k_image)
    fixres, fixres_tta = _correct(recal_model, at_fixres, device), _correct(recal_model, at_fixres, device, tta=True)
    images = sum(h["img_per_s"] * h["seconds"] for h in result["history"])
    summary = {
        "variant": variant.name, "what": variant.what, "recipe": recipe.as_dict(), "network": spec.name,
        "k_train": k_train, "epochs": train.epochs, "equivalent_epochs": train.equivalent_epochs(k_train),
        "sizes": [h["size"] for h in result["history"]], "train_minutes": result["train_seconds"] / 60,
        "img_per_s": images / result["train_seconds"], "sigma": sigma, "k_test": k_test, "n_test": len(test),
        "n_train": len(train_idx),
        "correct": {"train_res": pack_correct(plain), "train_res_tta": pack_correct(flipped),
                    "fixres": pack_correct(fixres), "fixres_tta": pack_correct(fixres_tta)},
        "experiment": result["key"],
    }
    write_json(summary_path, summary)
    if kept is not None:
        write_json(kept, summary)
    return summary


COLUMNS = {"train_res": "acc @k_train [95 % CI]", "train_res_tta": "+ flip TTA",
           "fixres": "acc @FixRes + BN recal [95 % CI]", "fixres_tta": "+ flip TTA (FixRes)"}


def table(rows: list[dict], reference: str = REFERENCE, family: int | None = None) -> list[dict]:
    """The ablation table: accuracies with 95 % intervals, and each variant against ``reference`` on the same images
    (difference with its paired bootstrap interval, exact McNemar p, Holm p over the ``family`` of challengers
    declared, by default those in ``rows``) at k_train and at the FixRes size."""
    ref = next((r for r in rows if r["variant"] == reference), None)
    out = []
    for r in rows:
        row = {"variant": r["variant"], "what changed": r["what"],
               "budget": f"{r['equivalent_epochs']:.2f} eq. epochs ({r['epochs']} epochs)",
               "train min": round(r["train_minutes"], 1), "img/s": round(r["img_per_s"]), "k_test": r["k_test"]}
        for key, label in COLUMNS.items():
            correct = unpack_correct(r["correct"][key])
            low, high = accuracy_interval(float(correct.mean()), correct.size)
            row[label] = f"{100 * correct.mean():.2f} % [{100 * low:.1f}, {100 * high:.1f}]"
            row[f"{key}_accuracy"] = float(correct.mean())
            if ref is not None and r is not ref and key in ("train_res", "fixres"):
                row[f"{key}_vs_reference"] = asdict(compare_paired(r["variant"], correct, reference,
                                                                   ref["correct"][key]))
        out.append(row)
    for key in ("train_res", "fixres"):  # one family per column: every challenger against the reference
        versus = [row[f"{key}_vs_reference"] for row in out if f"{key}_vs_reference" in row]
        for comparison, adjusted in zip(versus, holm_adjust([c["p_value"] for c in versus], family) if versus else []):
            comparison["adjusted_p"] = adjusted
    return out


def _versus(comparison: dict | None) -> str:
    if comparison is None:
        return "-"
    c = comparison
    return (f"{100 * c['difference']:+.2f} [{100 * c['difference_low']:+.1f}, {100 * c['difference_high']:+.1f}], "
            f"p = {c['p_value']:.2g}" + (f", Holm p = {c['adjusted_p']:.2g}" if c.get("adjusted_p") is not None else ""))


def final_decisions(table_rows: list[dict], summaries: list[dict], rules: list[DecisionRule],
                    family: int | None = None) -> dict[str, Decision]:
    """The rules of the rows at the final budget applied to the rows run so far: the recipe rule over every lever
    that has a comparison with the reference, Holm over the ``family`` of levers declared (those not run yet
    counted at p = 1, so a switch cannot be undone by their results), and the TTA rule on the reference row."""
    recipe_rule, tta_rule = rules
    comparisons = [PairedComparison(**r["fixres_vs_reference"]) for r in table_rows if "fixres_vs_reference" in r]
    out = {}
    if comparisons:
        decision = recipe_rule.decide_comparisons(comparisons, family)
        if family and family > len(comparisons):
            decision = replace(decision, sentence=f"{decision.sentence} (Holm over all {family} levers declared, the "
                               f"{family - len(comparisons)} not run yet counted at p = 1.)")
        out["recipe"] = decision
    reference = next((s for s in summaries if s["variant"] == recipe_rule.incumbent), None)
    if reference is not None:
        out["tta"] = tta_decision(reference)
    return out


def to_markdown(rows: list[dict], command: str, header: str, rules: list[str] = (), decisions: list[str] = (),
                not_run: list[str] = (), kept: str = "") -> str:
    """The table as Markdown, with the command that regenerates it at the top; ``rules`` (declared before the
    results) follow the header, then the table, the ``decisions`` they give and the variants ``not_run`` yet (the
    finished rows' summaries are in the folder ``kept`` beside the table)."""
    cols = ["variant", "what changed", "budget", "train min", "img/s", COLUMNS["train_res"], COLUMNS["train_res_tta"],
            "k_test", COLUMNS["fixres"], COLUMNS["fixres_tta"]]
    extra = ["vs reference @k_train (points, 95 % CI, McNemar p, Holm p)", "vs reference @FixRes"]
    lines = [f"# Ablation: accuracy per CPU budget\n\nRegenerate with:\n\n```bash\n{command}\n```\n", header, "",
             "| " + " | ".join([*cols, *extra]) + " |", "|" + "---|" * (len(cols) + len(extra))]
    for r in rows:
        versus = [_versus(r.get(f"{k}_vs_reference")) for k in ("train_res", "fixres")]
        lines.append("| " + " | ".join([*(str(r[c]) for c in cols), *versus]) + " |")
    if rules:
        lines[2:2] = ["", "\n\n".join(rules)]
    lines += ["", *decisions] if decisions else []
    if not_run:
        lines += ["", f"Not run yet: {', '.join(f'`{n}`' for n in not_run)} (the same command runs them; finished "
                      f"rows are read back from `{kept}/` beside this table)."]
    return "\n".join(lines) + "\n"


def check_only(only: list[str] | None, phi: bool = False, final: Recipe | None = None) -> None:
    """Raise a one-line ``ValueError`` when ``only`` names a variant that is not a row of this ablation (checked
    before any image is decoded: the names do not depend on the data or the budget); ``final``: the recipe whose
    rows at the final budget are run."""
    if final is not None:
        rows = final_variants(final, BASELINES["C"], 1000)
    else:
        rows = phi_variants(get_recipe(REFERENCE), 1.0) if phi else default_variants()
    every = [v.name for v in rows]
    unknown = set(only or ()) - set(every)
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(sorted(unknown))}: choose from {', '.join(every)}")


def final_rule(recipe: Recipe) -> DecisionRule:
    """The rule of the rows at the final budget, declared before they run: the study's recipe stands unless a
    lever beats it at the FixRes size after BN recalibration (the study's evaluation)."""
    return DecisionRule("which recipe the final model trains with, at its own budget", recipe.name,
                        "the study's recipe")


def tta_decision(summary: dict) -> Decision:
    """:data:`TTA_RULE` on one row: its FixRes accuracy with flip TTA against without, on the same images."""
    return decide_tta(summary["correct"]["fixres"], summary["correct"]["fixres_tta"])


def run_ablation(study: Study, budget: float, reports_dir: str | Path, command: str, train_n: int | None = None,
                 recal_n: int = 1000, only: list[str] | None = None, device: torch.device | str = "cpu",
                 progress: bool = True, phi: bool = False, final: bool = False) -> Path:
    """Train and evaluate every variant (resumable), then write ``ablation.md`` and ``ablation.json``; with ``phi``,
    the rows of :func:`phi_variants` (the study's recipe, ``budget`` at phi = 2) to ``ablation-phi.*``; with
    ``final``, the rows of :func:`final_variants` (the study's recipe and final network, ``budget`` its equivalent
    epochs) to ``ablation-final.*``, each row's decision rule stated before its results."""
    n_train = len(subset(study.splits["train"], train_n, study.seed))
    rules: list[DecisionRule] = []
    if phi:
        every, reference, name = phi_variants(study.recipe, budget), PHI_REFERENCE, "ablation-phi"
    elif final:
        spec = final_network(study.profile)
        steps = max(1, round(study.recipe.train_config(spec.resolution, budget).epochs * n_train
                             / study.recipe.batch_size))
        every, reference, name = final_variants(study.recipe, spec, steps), study.recipe.name, "ablation-final"
        rules = [final_rule(study.recipe), TTA_RULE]
    else:
        every = default_variants(steps=max(1, round(budget * n_train / get_recipe(REFERENCE).batch_size)))
        reference, name = REFERENCE, "ablation"
    check_only(only, phi, study.recipe if final else None)
    variants = [v for v in every if not only or v.name in only]
    family = len(every) - 1  # the challengers declared, whether run yet or not
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    if phi:
        what = (f"The study's final network (baseline C, alpha, beta, gamma = {seed_study.GRID_MULTIPLIERS[0]}) at each "
                f"phi with the `{study.recipe.name}` recipe, at equal training minutes: phi = 2 for {budget:g} "
                f"equivalent epochs, the others for as many as fit in the same minutes")
    elif final:
        what = (f"The recipe at the final model's budget: the study's final network ({every[0].spec.name}, "
                f"{every[0].spec.resolution} px) with the `{study.recipe.name}` recipe and each lever changed alone, "
                f"{budget:g} equivalent epochs each (the committed study's plan gave its final model "
                f"{planned_final_epochs(study.profile):g})")
    else:
        what = f"Baseline C at 64 px, budget {budget:g} equivalent epochs"
    kept = f"{name}-rows"
    rows = []
    for v in variants:
        rows.append(evaluate_variant(study, v, budget, train_n, recal_n, device, progress, reports_dir / kept))
        summary = table(rows, reference, family)
        header = (f"{what} (epochs x (size / k_train)^2), seed {study.seed}, {rows[0]['n_train']:,} training images, "
                  f"{len(study.splits['test']):,} `test` images, BN recalibrated on {recal_n:,} training images. "
                  f"Train minutes and img/s are wall-clock on a shared machine: compare them only roughly. Against "
                  f"`{reference}`: the accuracy difference in points with its paired bootstrap 95 % interval, the "
                  f"exact McNemar p on the same test images and its Holm adjustment over the {family} challengers "
                  f"declared (those not run yet counted at p = 1).")
        decisions = final_decisions(summary, rows, rules, family) if rules else {}
        not_run = [v.name for v in every if v.name not in {r["variant"] for r in rows}]
        text = to_markdown(summary, command, header, [r.statement() for r in rules],
                           [d.sentence for d in decisions.values()], not_run, kept)
        (reports_dir / f"{name}.md").write_text(text)
        write_json(reports_dir / f"{name}.json", {"command": command, "budget": budget, "reference": reference,
                                                  "what": what, "rows": summary, "rules": [r.statement() for r in rules],
                                                  "decisions": {k: d.sentence for k, d in decisions.items()},
                                                  "not_run": not_run, "kept": kept,
                                                  "n_train": n_train, "provenance": run_provenance(study)})
    return reports_dir / f"{name}.md"


def run_provenance(study: Study) -> dict:
    """What an ablation record says about where it ran: the run (profile, seed, data, device, machine, versions) and
    the code's commit."""
    return {"run": study.run_info(), "code": code_version()}


PHI_RULE = DecisionRule("which φ the budget should buy, at equal training minutes", "φ = 2",
                        "the φ whose minutes set the budget")


def phi_label(variant: str) -> str:
    """``"phi1"`` as a reader writes it: ``"φ = 1"``."""
    return f"φ = {variant.removeprefix('phi')}"


def _git_commit_of(path: Path) -> str | None:
    """The short hash and date of the commit that last changed ``path`` (None outside git or when uncommitted)."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h (%cs)", "--", path.name], cwd=path.parent,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def check_phi_provenance(path: Path, record: dict, profile: Profile) -> list[dict]:
    """Where a committed ``effnb ablate --phi`` record came from, checked against this run's ``profile``: one row per
    fact (commit, profile, budget, machine) with what was recorded and whether it holds."""
    prov = record.get("provenance") or {}
    run, code = prov.get("run") or {}, prov.get("code") or {}
    flag = re.search(r"--profile (\S+)", record.get("command", ""))
    recorded_profile = run.get("profile") or (flag.group(1) if flag else None)
    committed = _git_commit_of(path)
    budget = phi2_budget(profile)
    commit = code.get("commit")
    return [
        {"fact": "code", "recorded": commit[:12] + (" (with local changes)" if code.get("modified") else "") if commit
         else "no commit in the record", "check": f"file committed in {committed}" if committed
         else "the file is not in git here"},
        {"fact": "profile", "recorded": recorded_profile or "not recorded",
         "check": "this run's" if recorded_profile == profile.name else f"not this run's `{profile.name}`"},
        {"fact": "budget at φ = 2", "recorded": f"{record['budget']:g} equivalent epochs",
         "check": "this profile's final-model minutes" if record["budget"] == budget
         else f"this profile's final-model minutes are {budget:g}"},
        {"fact": "machine", "recorded": run.get("machine") or "not recorded",
         "check": "as recorded" if run.get("machine") else "unknown: its minutes are from the machine it ran on"},
    ]


def phi_decision(record: dict) -> Decision:
    """:data:`PHI_RULE` applied to a phi record's comparisons at the FixRes resolution, Holm-adjusted over the
    challengers (the record's own p-values; no image is evaluated again)."""
    comparisons = [PairedComparison(**{**r["fixres_vs_reference"], "challenger": phi_label(r["variant"]),
                                       "incumbent": phi_label(record["reference"])})
                   for r in record["rows"] if "fixres_vs_reference" in r]
    return PHI_RULE.decide_comparisons(comparisons)


def phi_points(record: dict, n_train: int, chosen: str) -> list[ComputePoint]:
    """The phi rows as points of the accuracy-against-compute figure (accuracy at FixRes after BN recalibration, on
    the record's ``test`` images): training minutes as recorded, training FLOPs as 3 x forward FLOPs x images x
    equivalent epochs (``n_train``: the record's own count when it has one)."""
    n_test = next(r["fixres_vs_reference"]["n"] for r in record["rows"] if "fixres_vs_reference" in r)
    n_train = record.get("n_train", n_train)
    points = []
    for r in record["rows"]:
        phi = int(r["variant"].removeprefix("phi"))
        spec = scale(BASELINES["C"], *seed_study.GRID_MULTIPLIERS[0], phi)
        equivalent = float(re.match(r"([\d.]+) eq\. epochs", r["budget"]).group(1))
        low, high = accuracy_interval(r["fixres_accuracy"], n_test)
        points.append(ComputePoint(phi_label(r["variant"]), "phi", "test", r["fixres_accuracy"], n_test, low, high,
                                   r["train min"], 3.0 * count_flops(spec, spec.resolution) * n_train * equivalent,
                                   phi_label(r["variant"]) == chosen))
    return points
