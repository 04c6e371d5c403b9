# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · FixRes: test at a larger resolution, then fine-tune there
#
# The pipeline, in order:
# 1. **train** normally with random crops at k_train (notebook 04);
# 2. **test at k_train / r**, where objects look as large as they did in training (r from σ, notebook 01),
#    unless a sweep over resolutions shows another one better beyond the noise;
# 3. **fine-tune at that resolution with the test-time preprocessing**, so the network's statistics
#    match what it sees at test time; then test there.
#
# Both choices follow rules printed before their results. Step 3 comes in three prices: re-estimating the batch-norm statistics only (no gradient step),
# training the classifier and last batch-norm with everything else frozen (the FixRes paper), and
# fine-tuning the whole network (the author's published code: 40 epochs at lr 1e-4).

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0

# %% [markdown]
# The data and the device, as in every notebook; σ comes from notebook 01 and the final model from notebook 04,
# so the test resolution is computed here, from the final model's own training resolution.

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from effnb.data import TestSize, recommended_test_resolution, subset
from effnb.nn import NetSpec
from effnb.report import plot_resolution_sweep
from effnb.study import (FIXRES_STEPS, TTA_RULE, CostOrderedRule, DecisionRule, accuracy_interval, decide_tta, format_accuracy,
                         open_study)
from effnb.train import Feed, evaluate, load_checkpoint, resolution_sweep, run_experiment

study = open_study("finetune", profile, data_dir, artifacts_dir, seed)
p = study.profile
sigma, scaling = study.output("data")["sigma"], study.output("scaling")
spec = NetSpec.from_dict(scaling["spec"])
k_train = spec.resolution
k_test, k_image_test = recommended_test_resolution(k_train, sigma)
display(Markdown(f"σ = {sigma:.3f}: trained at {k_train} px, so the FixRes formula tests at **{k_test} px** "
                 f"(the image's shorter side resized to {k_image_test} px, then the centre {k_test} px)."))

# %% [markdown]
# ## Which test resolution
# The formula gives one resolution; a sweep over resolutions can peak elsewhere. The rule, fixed before the sweep:

# %%
k_formula = k_test
decision_idx, recal_idx = np.asarray(study.decision_indices), np.asarray(study.recalibration_indices)
rule_k = DecisionRule("which test resolution", f"{k_formula} px", "the formula's k_train / r")
display(Markdown(f"{rule_k.statement()} Each resolution is measured on the same {len(decision_idx):,} `test` images "
                 f"after re-estimating the batch-norm statistics there on {len(recal_idx):,} training images (no "
                 f"gradient step), since every FixRes step below includes at least that."))

# %% [markdown]
# The trained model at each resolution, unchanged and with its batch-norm statistics re-estimated there, both on
# the same decision images; the shaded bands are 95 % Wilson intervals.

# %%
k_tests = sorted({int(round(k_train * f)) for f in p.fixres.sweep_factors} | {k_formula})
model, _ = load_checkpoint(scaling["checkpoint"])
sweep_idx = subset(study.splits["test"], p.fixres.sweep_n, seed)
curves = {"trained": resolution_sweep(model, study.cache, sweep_idx, k_tests, device=study.device)}
unchanged = resolution_sweep(model, study.cache, decision_idx, k_tests, device=study.device)
recalibrated = resolution_sweep(model, study.cache, decision_idx, k_tests, device=study.device, per_image=True,
                                recalibrate_on=recal_idx)
fig = plot_resolution_sweep({"trained, unchanged": unchanged, "BN statistics re-estimated at each resolution":
                             recalibrated}, k_train, k_formula)

# %% [markdown]
# The rule applied to the sweep with re-estimated statistics: every other resolution against the formula's.

# %%
decision_k = rule_k.decide({f"{row['k_test']} px": row["correct"] for row in recalibrated}, seed)
k_test = int(decision_k.chosen.split()[0])
k_image_test = TestSize.at(k_test).k_image_test
peak = max(recalibrated, key=lambda row: row["accuracy"])
display(decision_k.table())
where = (f"The sweep peaks at the formula's {k_formula} px." if peak["k_test"] == k_formula else
         f"The sweep peaks at {peak['k_test']} px ({format_accuracy(peak['accuracy'], peak['n'])}), not at the "
         f"formula's {k_formula} px.")
display(Markdown(f"**Decision:** {where} {decision_k.sentence} FixRes fine-tunes and tests at **{k_test} px** "
                 f"(image resized to {k_image_test} px)."))

# %% [markdown]
# ## Fine-tuning at the test resolution: three variants, and which one pays
# All three start from the trained model and see the same training images through the test-time preprocessing
# at the chosen resolution. Their CPU costs differ a lot, so the rule walks up in cost and stops at the first step
# that does not pay (a fixed sequence of tests, which needs no multiplicity correction):

# %%
step_ids = ("larger_test", "bn_recal", "head", "full")
rule_step = CostOrderedRule("which FixRes step", tuple(FIXRES_STEPS[sid] for sid in step_ids))
display(Markdown(rule_step.statement()))

# %% [markdown]
# Each variant is trained (or read back), then measured on the decision images and swept over the resolutions
# on a smaller sample of `test`, the same images for every curve of the figure (shaded: 95 % Wilson intervals).

# %%
variants = study.fixres_experiments(spec, scaling["checkpoint"], k_test)
finetuned = {vid: run_experiment(exp, study.cache, study.artifacts_dir, study.device) for vid, exp in variants.items()}
for vid, result in finetuned.items():
    tuned, _ = load_checkpoint(result["checkpoint"])
    curves[vid] = resolution_sweep(tuned, study.cache, sweep_idx, k_tests, device=study.device)
fig = plot_resolution_sweep({"trained (no fine-tuning)": curves["trained"]} |
                            {FIXRES_STEPS[vid]: curves[vid] for vid in finetuned}, k_train, k_test)

# %% [markdown]
# ## The FixRes steps side by side
# One row per step of the pipeline, on the decision images, with its 95 % interval and the CPU time it added.

# %%
evaluated = {"trained": scaling["eval"],
             "larger_test": evaluate(model, Feed(study.cache, decision_idx, k_test, "eval", batch_size=100),
                                     study.device, progress=False, per_image=True)} | \
            {vid: r["eval"] for vid, r in finetuned.items()}
table = pd.DataFrame([{"id": sid, "model": FIXRES_STEPS[sid], "k_test": row["k_test"],
                       "accuracy %": 100 * row["accuracy"],
                       "95 % interval": "{:.1f}–{:.1f} %".format(*(100 * v for v in accuracy_interval(row["accuracy"], row["n"]))),
                       "loss": row["loss"], "extra CPU s": finetuned[sid]["train_seconds"] if sid in finetuned else 0.0}
                      for sid, row in evaluated.items()]).set_index("id")
display(table.set_index("model").round({"accuracy %": 2, "loss": 4, "extra CPU s": 1}))
decision_step = rule_step.decide({FIXRES_STEPS[sid]: evaluated[sid]["correct"] for sid in step_ids}, seed)
chosen_step = next(sid for sid in step_ids if FIXRES_STEPS[sid] == decision_step.chosen)
display(decision_step.table())
display(Markdown(f"**Decision:** {decision_step.sentence}"))

# %% [markdown]
# ## Flip TTA: a price paid at evaluation
# Averaging each image's logits with its mirror's doubles the evaluation cost and needs no training. The
# first recipe ablation at the final budget (`reports/ablation-final-wd0.05.md`) found that it pays, the second
# (`reports/ablation-final.md`) that it does not beyond the noise; this run decides it again, for its own chosen
# step, on the same decision images, by a rule fixed before the result:

# %%
display(Markdown(TTA_RULE.statement()))
chosen_model = model if chosen_step in ("trained", "larger_test") else load_checkpoint(finetuned[chosen_step]["checkpoint"])[0]
chosen_feed = Feed(study.cache, decision_idx, k_train if chosen_step == "trained" else k_test, "eval", batch_size=100)
# one pass again beside the two, through the same call, so the pair differs by the flip alone (a few seconds)
one_pass, flipped = (evaluate(chosen_model, chosen_feed, study.device, progress=False, per_image=True, tta=flip)
                     for flip in (False, True))
decision_tta = decide_tta(one_pass["correct"], flipped["correct"], seed)
display(decision_tta.table())
display(Markdown(f"**Decision:** {decision_tta.sentence}"))

# %% [markdown]
# ## What this shows

# %%
fmt = {sid: format_accuracy(row["accuracy"], row["n"]) for sid, row in evaluated.items()}
study.conclude("finetune", {
    "k_train": k_train, "k_test": k_test, "k_image_test": k_image_test, "k_test_formula": k_formula,
    "k_tests": k_tests, "curves": curves, "unchanged_sweep": unchanged, "recalibrated_sweep": recalibrated,
    "variants": {vid: {"checkpoint": r["checkpoint"], "train_seconds": r["train_seconds"]}
                 for vid, r in finetuned.items()},
    "chosen_step": chosen_step, "tta": decision_tta.switched, "table": table.reset_index().to_dict(orient="records"),
    "decisions": {"test_resolution": decision_k.as_dict(), "fixres_step": decision_step.as_dict(),
                  "flip_tta": decision_tta.as_dict()},
}, [
    f"{where} {decision_k.sentence}",
    f"Without fine-tuning, moving the test resolution from {k_train} px to {k_test} px changes accuracy from "
    f"{fmt['trained']} to {fmt['larger_test']}.",
    "At that resolution: " + "; ".join(f"{FIXRES_STEPS[vid]}: {fmt[vid]}, {finetuned[vid]['train_seconds']:.0f} s "
                                       f"of CPU" for vid in finetuned) + ".",
    decision_step.sentence,
    decision_tta.sentence,
])
