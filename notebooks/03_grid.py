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

# %% [markdown]
# The data and the device, as in every notebook; the baseline to scale comes from notebook 02.

# %%
from IPython.display import display

from effnb import seed_results
from effnb.experiments import run_experiment
from effnb.model import BASELINES
from effnb.flops import scaling_table
from effnb.plots import plot_learning_curves, results_frame
from effnb.scaling import SEED_GRID, constraint, scale
from effnb.stats import format_accuracy
from effnb.study import open_study
from effnb.widgets import scaling_explorer, show_explorer

study = open_study("grid", profile, data_dir, artifacts_dir, seed)
base = BASELINES[study.stage("baselines")["chosen"]]
phi = study.profile.grid_phi

# %% [markdown]
# ## Explore the scaling rule
# Stages 1 and 6 stay fixed, stage 2 keeps one layer (its width grows), layers and channels round to
# the nearest integer. The report shows the table for the seed's chosen (1.2, 1.05, 1.23).

# %%
show_explorer(scaling_explorer, base)
display(scaling_table(base, 1.2, 1.05, 1.23, 4))

# %% [markdown]
# ## The grid
# Each candidate scales the baseline at φ = 1 and trains on the baselines' budget; the seed's accuracies
# sit beside this run's.

# %%
specs = [scale(base, a, b, g, phi) for a, b, g in SEED_GRID]
results = [run_experiment(study.selection_experiment(spec), study.cache, artifacts_dir, study.device) for spec in specs]
table = results_frame(results)
table.insert(0, "alpha", [a for a, _, _ in SEED_GRID])
table.insert(1, "beta", [b for _, b, _ in SEED_GRID])
table.insert(2, "gamma", [g for _, _, g in SEED_GRID])
table.insert(3, "a*b^2*g^2", [round(constraint(*abg), 3) for abg in SEED_GRID])
table["seed test acc %"] = [100 * row.accuracy for _, row in seed_results.GRID]
display(table)
fig = plot_learning_curves(results)

# %% [markdown]
# ## What this shows
# The most accurate candidate is handed to notebook 04: its α, β, γ, its scaled network and its result.

# %%
best = max(range(len(results)), key=lambda i: results[i]["eval"]["accuracy"])
alpha, beta, gamma = SEED_GRID[best]
winner = results[best]
study.conclude("grid", {
    "alpha": alpha, "beta": beta, "gamma": gamma, "phi": phi, "experiment": best + 1,
    "spec": specs[best].to_dict(), "result": winner, "results": results,
}, [
    f"The six candidates reach {table['test acc %'].min():.2f}–{table['test acc %'].max():.2f} % on `test` "
    f"(the seed: {min(table['seed test acc %']):.2f}–{max(table['seed test acc %']):.2f} %).",
    f"The most accurate is experiment {best + 1} (α, β, γ = {alpha}, {beta}, {gamma}) with "
    f"{format_accuracy(winner['eval']['accuracy'], winner['eval']['n'])}; the seed picked experiment 1 "
    f"(1.2, 1.05, 1.23). Notebook 04 scales with experiment {best + 1}'s α, β, γ.",
])
