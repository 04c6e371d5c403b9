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
# # 03 · Grid search of α, β, γ
#
# EfficientNet scales depth by α^φ, width by β^φ and resolution by γ^φ. Since FLOPs grow about
# linearly with depth and quadratically with width and resolution, α·β²·γ² ≈ 2 makes each step of φ
# double the FLOPs. The grid search runs at φ = 1 on the small model, where experiments are cheap:
# the seed's six candidates, each trained on the same budget as the baselines.

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
from effnb.plots import plot_learning_curves, results_frame
from effnb.scaling import SEED_GRID, SEED_GRID_RESULTS, constraint, scale
from effnb.study import prepare_study, read_stage, run_info, write_stage
from effnb.widgets import scaling_explorer, scaling_frame, show_explorer

study = prepare_study(profile, data_dir, artifacts_dir, seed)
base = BASELINES[read_stage(artifacts_dir, "baselines")["chosen"]]
device = pick_device()
phi = study.profile.grid_phi
print(study.profile.summary(), "| device:", device)
pd.Series(run_info(study.profile))

# %% [markdown]
# ## Explore the scaling rule
# Stages 1 and 6 stay fixed, stage 2 keeps one layer (its width grows), layers and channels round to
# the nearest integer. The report shows the table for the seed's chosen (1.2, 1.05, 1.23).

# %%
show_explorer(scaling_explorer, base)
display(scaling_frame(base, 1.2, 1.05, 1.23, 4))

# %% [markdown]
# ## The grid

# %%
results = []
for i, (a, b, g) in enumerate(SEED_GRID, 1):
    spec = scale(base, a, b, g, phi)
    results.append(run_experiment(study.selection_experiment(f"grid{i}-a{a}-b{b}-g{g}", spec),
                                  study.cache, artifacts_dir, device))
table = results_frame(results)
table.insert(1, "alpha", [a for a, _, _ in SEED_GRID])
table.insert(2, "beta", [b for _, b, _ in SEED_GRID])
table.insert(3, "gamma", [g for _, _, g in SEED_GRID])
table.insert(4, "a*b^2*g^2", [round(constraint(*abg), 3) for abg in SEED_GRID])
table["seed test acc %"] = [100 * r["accuracy"] for r in SEED_GRID_RESULTS]
display(table)
fig = plot_learning_curves(results)

# %%
best = max(range(len(results)), key=lambda i: results[i]["eval"]["accuracy"])
alpha, beta, gamma = SEED_GRID[best]
print(f"winner: experiment {best + 1}: alpha={alpha}, beta={beta}, gamma={gamma} "
      f"({100 * results[best]['eval']['accuracy']:.2f} %); the seed picked experiment 1 (1.2, 1.05, 1.23)")
write_stage(artifacts_dir, "grid", {"run": run_info(study.profile), "alpha": alpha, "beta": beta, "gamma": gamma,
                                    "phi": phi, "experiment": best + 1, "table": table.to_dict(orient="records")})
