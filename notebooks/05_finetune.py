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
# 2. **test at k_train / r**, where objects look as large as they did in training (r from σ, notebook 01);
# 3. **fine-tune at that resolution with the test-time preprocessing**, so the network's statistics
#    match what it sees at test time; then test there.
#
# Step 3 comes in three prices: re-estimating the batch-norm statistics only (no gradient step),
# training the classifier and last batch-norm with everything else frozen (the FixRes paper), and
# fine-tuning the whole network (the author's published code: 40 epochs at lr 1e-4).

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = "../artifacts"
seed = 0

# %% [markdown]
# The data and the device, as in every notebook; σ comes from notebook 01 and the final model from notebook 04,
# so the test resolution is computed here, from the final model's own training resolution.

# %%
import pandas as pd
from IPython.display import Markdown, display

from effnb.checkpoint import load_checkpoint
from effnb.data import subset
from effnb.engine import resolution_sweep
from effnb.experiments import run_experiment
from effnb.fixres import recommended_test_resolution
from effnb.model import NetSpec
from effnb.plots import plot_resolution_sweep
from effnb.stats import accuracy_interval, format_accuracy
from effnb.study import FIXRES_STEPS, open_study

study = open_study("finetune", profile, data_dir, artifacts_dir, seed)
p = study.profile
sigma, scaling = study.stage("data")["sigma"], study.stage("scaling")
spec = NetSpec.from_dict(scaling["spec"])
k_train = spec.resolution
k_test, k_image_test = recommended_test_resolution(k_train, sigma)
display(Markdown(f"σ = {sigma:.3f}: trained at {k_train} px, so FixRes tests at **{k_test} px** "
                 f"(the image's shorter side resized to {k_image_test} px, then the centre {k_test} px)."))

# %% [markdown]
# ## Before fine-tuning: accuracy against test resolution
# The trained model, unchanged, evaluated on the same `test` images at a range of test resolutions.

# %%
sweep_idx = subset(study.splits["test"], p.sweep_n, seed)
k_tests = sorted({int(round(k_train * f)) for f in p.sweep_factors} | {k_test})
model, _ = load_checkpoint(scaling["checkpoint"])
curves = {"trained": resolution_sweep(model, study.cache, sweep_idx, k_tests, device=study.device)}
fig = plot_resolution_sweep({"trained (no fine-tuning)": curves["trained"]}, k_train, k_test)

# %% [markdown]
# ## Fine-tuning at the test resolution: three variants
# All three start from the trained model and see the same training images through the test-time
# preprocessing at the FixRes resolution; each is then swept like the trained model.

# %%
variants = study.fixres_experiments(spec, scaling["checkpoint"], k_test)
finetuned = {vid: run_experiment(exp, study.cache, artifacts_dir, study.device) for vid, exp in variants.items()}
for vid, result in finetuned.items():
    model, _ = load_checkpoint(result["checkpoint"])
    curves[vid] = resolution_sweep(model, study.cache, sweep_idx, k_tests, device=study.device)
fig = plot_resolution_sweep({"trained (no fine-tuning)": curves["trained"]} |
                            {FIXRES_STEPS[vid]: curves[vid] for vid in finetuned}, k_train, k_test)

# %% [markdown]
# ## The FixRes steps side by side
# One row per step of the pipeline, on the sweep's `test` images, with the CPU time each step added.

# %%
at = {vid: {row["k_test"]: row for row in rows} for vid, rows in curves.items()}
evaluated = {"trained": at["trained"][k_train], "larger_test": at["trained"][k_test]} | \
            {vid: at[vid][k_test] for vid in finetuned}
table = pd.DataFrame([{"id": sid, "model": FIXRES_STEPS[sid], "k_test": row["k_test"],
                       "accuracy %": 100 * row["accuracy"],
                       "95 % interval": "{:.1f}–{:.1f} %".format(*(100 * v for v in accuracy_interval(row["accuracy"], row["n"]))),
                       "loss": row["loss"], "extra CPU s": finetuned[sid]["train_seconds"] if sid in finetuned else 0.0}
                      for sid, row in evaluated.items()]).set_index("id")
display(table.set_index("model").round({"accuracy %": 2, "loss": 4, "extra CPU s": 1}))

# %% [markdown]
# ## What this shows

# %%
peak = max(curves["trained"], key=lambda row: row["accuracy"])
fmt = {sid: format_accuracy(row["accuracy"], row["n"]) for sid, row in evaluated.items()}
best = max(finetuned, key=lambda vid: evaluated[vid]["accuracy"])
study.conclude("finetune", {
    "k_train": k_train, "k_test": k_test, "k_image_test": k_image_test, "k_tests": k_tests, "curves": curves,
    "variants": {vid: {"checkpoint": r["checkpoint"], "train_seconds": r["train_seconds"]}
                                             for vid, r in finetuned.items()},
    "table": table.reset_index().to_dict(orient="records"),
}, [
    f"Without fine-tuning, moving the test resolution from {k_train} px to the FixRes {k_test} px changes accuracy "
    f"from {fmt['trained']} to {fmt['larger_test']}; over the sweep the unchanged model peaks at "
    f"{peak['k_test']} px ({100 * peak['accuracy']:.2f} %).",
    "At the FixRes resolution: " + "; ".join(f"{FIXRES_STEPS[vid]}: {fmt[vid]}, "
                                             f"{finetuned[vid]['train_seconds']:.0f} s of CPU" for vid in finetuned) + ".",
    f"The most accurate variant here is “{FIXRES_STEPS[best]}”; variants whose intervals overlap are not "
    f"separated by this many images.",
])
