# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# 2. **test at k_train / r**, where objects look as large as they did in training (r from σ, notebook 01);
# 3. **fine-tune at that resolution with the test-time preprocessing**, so the network's statistics
#    match what it sees at test time; then test there.
#
# Step 3 comes in three prices: re-estimating the batch-norm statistics only (no gradient step),
# training the classifier and last batch-norm with everything else frozen (the FixRes paper), and
# fine-tuning the whole network (the seed: 40 epochs at lr 1e-4).

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = "../artifacts"
seed = 0

# %%
import numpy as np
import pandas as pd
from IPython.display import display

from effnb.checkpoint import load_checkpoint
from effnb.data import subset
from effnb.device import pick_device
from effnb.engine import resolution_sweep
from effnb.experiments import run_experiment
from effnb.fixres import recommended_test_resolution
from effnb.model import NetSpec
from effnb.plots import plot_resolution_sweep
from effnb.study import prepare_study, read_stage, run_info, write_stage

study = prepare_study(profile, data_dir, artifacts_dir, seed)
p = study.profile
data, scaling = read_stage(artifacts_dir, "data"), read_stage(artifacts_dir, "scaling")
spec = NetSpec.from_dict(scaling["spec"])
device = pick_device()
k_train = spec.resolution
k_test, k_image_test = recommended_test_resolution(k_train, data["sigma"])
print(p.summary(), "| device:", device)
print(f"sigma = {data['sigma']:.3f}: train at {k_train}px -> test at {k_test}px (image resized to {k_image_test}px)")
pd.Series(run_info(p))

# %% [markdown]
# ## Before fine-tuning: accuracy against test resolution

# %%
sweep_idx = subset(study.splits["test"], p.sweep_n, seed)
k_tests = sorted({int(round(k_train * f)) for f in p.sweep_factors} | {k_test})
model, _ = load_checkpoint(scaling["checkpoint"])
curves = {"trained (no fine-tuning)": resolution_sweep(model, study.cache, sweep_idx, k_tests, device=device)}
fig = plot_resolution_sweep(curves, k_train, k_test)

# %% [markdown]
# ## Fine-tuning at the test resolution: three variants

# %%
variants = study.fixres_experiments(spec, scaling["checkpoint"], k_test)
finetuned = {name: run_experiment(exp, study.cache, artifacts_dir, device) for name, exp in variants.items()}
labels = {"bn_recal": "BN statistics recalibrated", "head": "classifier + last BN fine-tuned",
          "full": "whole network fine-tuned"}
for name, result in finetuned.items():
    model, _ = load_checkpoint(result["checkpoint"])
    curves[labels[name]] = resolution_sweep(model, study.cache, sweep_idx, k_tests, device=device)
fig = plot_resolution_sweep(curves, k_train, k_test)

# %%
at = lambda rows, k: next(r for r in rows if r["k_test"] == k)  # noqa: E731
table = pd.DataFrame([{"model": label, "CPU seconds to make": finetuned[n]["train_seconds"] if n in finetuned else 0.0,
                       f"acc % @{k_train}px": 100 * at(rows, k_train)["accuracy"],
                       f"acc % @{k_test}px": 100 * at(rows, k_test)["accuracy"],
                       f"loss @{k_test}px": at(rows, k_test)["loss"]}
                      for (n, label), rows in zip([("none", "")] + list(labels.items()), curves.values())])
table["model"] = list(curves)
display(table.round(3))

# %%
write_stage(artifacts_dir, "finetune", {
    "run": run_info(p), "k_train": k_train, "k_test": k_test, "k_image_test": k_image_test,
    "k_tests": k_tests, "curves": curves,
    "variants": {n: {"checkpoint": r["checkpoint"], "train_seconds": r["train_seconds"], "label": labels[n]}
                 for n, r in finetuned.items()}})
