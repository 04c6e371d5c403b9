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
# # 04 · Compound scaling by φ
#
# With α, β, γ fixed by the grid, one coefficient φ scales the network. This notebook shows the scaled
# architectures, trains the φ values the profile affords on the selection budget to draw EfficientNet's
# headline plot (accuracy against FLOPs) on this problem, then trains the **final model** at the
# profile's φ on the full training split.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = "../artifacts"
seed = 0

# %%
import pandas as pd
from IPython.display import display

from effnb.device import pick_device
from effnb.experiments import run_experiment
from effnb.model import BASELINES
from effnb.plots import plot_accuracy_vs_flops, plot_learning_curves, results_frame
from effnb.scaling import scale
from effnb.study import prepare_study, read_stage, run_info, write_stage
from effnb.widgets import scaling_frame

study = prepare_study(profile, data_dir, artifacts_dir, seed)
p = study.profile
baselines, grid = read_stage(artifacts_dir, "baselines"), read_stage(artifacts_dir, "grid")
base = BASELINES[baselines["chosen"]]
alpha, beta, gamma = grid["alpha"], grid["beta"], grid["gamma"]
device = pick_device()
print(p.summary(), "| device:", device)
pd.Series(run_info(p))

# %% [markdown]
# ## The scaled architectures (FLOPs measured with `torch.utils.flop_counter`, multiply-add = 2)

# %%
display(scaling_frame(base, alpha, beta, gamma, max(4, p.final_phi)))
final_spec = scale(base, alpha, beta, gamma, p.final_phi)
print(f"final model phi={p.final_phi}:")
display(pd.DataFrame(final_spec.table()))

# %% [markdown]
# ## Accuracy against FLOPs on the selection budget
# φ = 0 is the baseline (notebook 02) and φ = 1 the grid winner (notebook 03), read back from their
# artifacts; larger φ are trained here on the same images for the same number of epochs.

# %%
runs = [run_experiment(study.selection_experiment(f"baseline-{baselines['chosen']}", base),
                       study.cache, artifacts_dir, device)]
for phi in sorted({grid["phi"], *p.scaling_phis}):
    spec = scale(base, alpha, beta, gamma, phi)
    name = f"grid{grid['experiment']}-a{alpha}-b{beta}-g{gamma}" if phi == grid["phi"] else f"scale-phi{phi}"
    runs.append(run_experiment(study.selection_experiment(name, spec), study.cache, artifacts_dir, device))
curve = results_frame(runs)
curve.insert(0, "phi", [0, *sorted({grid["phi"], *p.scaling_phis})])
display(curve)
fig = plot_accuracy_vs_flops(curve, label="phi")

# %% [markdown]
# ## The final model
# Trained on the whole `train` split with the profile's epochs (the seed: φ = 4, 150 epochs). Each
# epoch is checkpointed: an interrupted run resumes from its last finished epoch.

# %%
final = run_experiment(study.final_experiment(final_spec), study.cache, artifacts_dir, device)
display(results_frame([final]))
fig = plot_learning_curves([final])
write_stage(artifacts_dir, "scaling", {"run": run_info(p), "phi": p.final_phi, "alpha": alpha, "beta": beta,
                                       "gamma": gamma, "spec": final_spec.to_dict(), "checkpoint": final["checkpoint"],
                                       "eval": final["eval"], "train_seconds": final["train_seconds"],
                                       "curve": curve.to_dict(orient="records")})
