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
# # 04 · Compound scaling by φ
#
# With α, β, γ fixed by the grid, one coefficient φ scales the network. This notebook shows the scaled
# architectures, trains the φ values the profile affords on the selection budget to draw EfficientNet's
# headline plot (accuracy against FLOPs) on this problem, then trains the **final model** at the
# profile's φ on the full training split.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0

# %% [markdown]
# The data and the device, as in every notebook; the baseline comes from notebook 02 and the grid's winner
# (α, β, γ, its network and its result) from notebook 03.

# %%
import pandas as pd
from IPython.display import Markdown, display

from effnb.nn import NetSpec, scale, scaling_table
from effnb.report import plot_accuracy_vs_flops, plot_learning_curves, results_frame
from effnb.study import BaselinesOutput, describe_plan, fix_final_epochs, format_accuracy, measure_candidate, open_study, read_plan
from effnb.train import run_experiment

study = open_study("scaling", profile, data_dir, artifacts_dir, seed)
p = study.profile
baselines, grid = study.output("baselines", BaselinesOutput), study.output("grid")
base_result, grid_result = baselines.chosen_result.raw, grid["result"]
base = NetSpec.from_dict(base_result["spec"])
alpha, beta, gamma = grid["alpha"], grid["beta"], grid["gamma"]

# %% [markdown]
# ## The scaled architectures
# Resolution, layers and channels per stage, parameters and forward FLOPs (multiply-add = 2) for each φ.

# %%
display(scaling_table(base, alpha, beta, gamma, max(4, p.final.phi)))
final_spec = scale(base, alpha, beta, gamma, p.final.phi)
display(Markdown(f"The final model, φ = {p.final.phi}:"))
display(pd.DataFrame(final_spec.table()).set_index("stage"))

# %% [markdown]
# ## Accuracy against FLOPs on the selection budget
# φ = 0 is the baseline (notebook 02) and the grid's φ its winner (notebook 03), both from the last rung of
# their selections, read from their notebooks' outputs; larger φ are trained here on the same images for the
# same number of epochs and measured the same way.

# %%
phis = [0, grid["phi"], *sorted(set(p.selection.scaling_phis) - {0, grid["phi"]})]
sigma = study.output("data")["sigma"]
runs = [base_result, grid_result] + [
    measure_candidate(study, scale(base, alpha, beta, gamma, phi), p.selection.epochs, sigma)
    for phi in phis[2:]]
curve = results_frame(runs)
curve.insert(0, "phi", phis)
display(curve)
fig = plot_accuracy_vs_flops(curve, label="phi")

# %% [markdown]
# ## The final model
# Trained on the whole `train` split (the seed: φ = 4; the author's published code: 150 epochs). With a plan
# (`effnb study --budget-minutes M`) its epochs are fixed here, once: this network's step is timed, and the
# minutes left after the earlier notebooks, the reserve for 05 and 06 and the margin buy as many equivalent epochs
# as fit; without one, the profile's epochs. Each epoch is checkpointed: an interrupted run resumes from its last
# finished epoch, with the same epochs.

# %%
final_epochs = fix_final_epochs(study, final_spec)
display(Markdown(describe_plan(read_plan(study.artifacts_dir)) if read_plan(study.artifacts_dir) else
                 f"No plan: the profile's {final_epochs} equivalent epochs."))
final = run_experiment(study.final_experiment(final_spec, final_epochs), study.cache, study.artifacts_dir, study.device)
display(results_frame([final]))
fig = plot_learning_curves([final])

# %% [markdown]
# ## What this shows

# %%
first, last = curve.iloc[0], curve.iloc[-1]
study.conclude("scaling", {
    "phi": p.final.phi, "alpha": alpha, "beta": beta, "gamma": gamma, "spec": final_spec.to_dict(),
    "checkpoint": final["checkpoint"], "eval": final["eval"], "train_seconds": final["train_seconds"],
    "curve": curve.reset_index().to_dict(orient="records"),
}, [
    f"On the selection budget, scaling from φ = 0 to φ = {last['phi']} multiplies the forward FLOPs by "
    f"{last['MFLOPs (2/MAC)'] / first['MFLOPs (2/MAC)']:.1f} ({first['MFLOPs (2/MAC)']:.1f} → "
    f"{last['MFLOPs (2/MAC)']:.1f} MFLOPs) and moves accuracy from {first['test acc %']:.2f} % to "
    f"{last['test acc %']:.2f} %.",
    f"The final model (φ = {p.final.phi}, {final_spec.resolution} px, {final['params']:,} parameters) trained "
    f"{len(final['history'])} epoch(s) on {final['n_train']:,} images in {final['train_seconds'] / 60:.1f} min and "
    f"reaches {format_accuracy(final['eval']['accuracy'], final['eval']['n'])} on `test` at its training resolution.",
])
