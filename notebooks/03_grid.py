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
# the seed's six candidates, selected by successive halving with a rule fixed in advance; the last rung
# has the same budget as the baselines'.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0

# %% [markdown]
# The data and the device, as in every notebook; the baseline to scale comes from notebook 02.

# %%
from IPython.display import Markdown, display

from effnb import seed_study
from effnb.nn import BASELINES, constraint, scale, scaling_table
from effnb.report import plot_learning_curves, plot_selection, results_frame, scaling_explorer, show_explorer
from effnb.study import DecisionRule, format_accuracy, measurement, open_study, select

study = open_study("grid", profile, data_dir, artifacts_dir, seed)
base = BASELINES[study.output("baselines")["chosen"]]
phi = study.profile.selection.grid_phi

# %% [markdown]
# ## Explore the scaling rule
# Stages 1 and 6 stay fixed, stage 2 keeps one layer (its width grows), layers and channels round to
# the nearest integer. The report shows the table for the seed's chosen (1.2, 1.05, 1.23).

# %%
show_explorer(scaling_explorer, base)
display(scaling_table(base, 1.2, 1.05, 1.23, 4))

# %% [markdown]
# ## The decision rule, fixed before any result
# The study scales with the seed's α, β, γ unless this run shows, beyond the noise, that another candidate is better.

# %%
sigma = study.output("data")["sigma"]
incumbent = f"experiment {seed_study.CHOSEN_GRID_EXPERIMENT.value}"
rule = DecisionRule("which α, β, γ to scale with", incumbent, "the seed's choice")
display(Markdown(f"{rule.statement()} {measurement(study, sigma)}"))

# %% [markdown]
# ## The grid, by successive halving
# Each candidate scales the baseline at φ = 1. All six train briefly; the better half of the challengers, beside
# experiment 1, train longer, and so on until the last rung has the full selection budget, the same as the
# baselines'. The seed's accuracies sit beside this run's.

# %%
specs = {f"experiment {i}": scale(base, a, b, g, phi) for i, (a, b, g) in enumerate(seed_study.GRID_MULTIPLIERS, 1)}
multipliers = dict(zip(specs, seed_study.GRID_MULTIPLIERS))
selection = select(study, specs, rule, sigma)
runs = selection.table()
display(runs.set_index(["rung", "candidate"]))
final_rung = selection.rungs[-1].results
table = results_frame([final_rung[n] for n in final_rung])
table.insert(0, "alpha", [multipliers[n][0] for n in final_rung])
table.insert(1, "beta", [multipliers[n][1] for n in final_rung])
table.insert(2, "gamma", [multipliers[n][2] for n in final_rung])
table.insert(3, "a*b^2*g^2", [round(constraint(*multipliers[n]), 3) for n in final_rung])
seed_study_accuracy = {f"experiment {i}": 100 * row.accuracy for i, (_, row) in enumerate(seed_study.GRID, 1)}
table["seed test acc %"] = [seed_study_accuracy[n] for n in final_rung]
display(table)
fig = plot_selection(runs)

# %% [markdown]
# ## The decision
# Each challenger left on the last rung against experiment 1, on the same images.

# %%
display(selection.decision.table())
display(Markdown(f"**Decision:** {selection.decision.sentence}"))
fig = plot_learning_curves(list(final_rung.values()))

# %% [markdown]
# ## What this shows
# The chosen candidate is handed to notebook 04: its α, β, γ, its scaled network and its result.

# %%
chosen = selection.chosen
alpha, beta, gamma = multipliers[chosen]
winner = final_rung[chosen]
first = selection.rungs[0].results
study.conclude("grid", {
    "alpha": alpha, "beta": beta, "gamma": gamma, "phi": phi, "experiment": list(specs).index(chosen) + 1,
    "spec": specs[chosen].to_dict(), "result": winner, "results": selection.latest(), "selection": selection.as_dict(),
}, [
    f"After {selection.rungs[0].epochs:g} equivalent epoch(s) the six candidates reach "
    f"{min(100 * r['eval']['accuracy'] for r in first.values()):.2f}–"
    f"{max(100 * r['eval']['accuracy'] for r in first.values()):.2f} % on `test` (the seed, fully trained: "
    f"{min(seed_study_accuracy.values()):.2f}–{max(seed_study_accuracy.values()):.2f} %); "
    + ", ".join(n for n in final_rung if n != incumbent) + f" reached the last rung beside {incumbent}.",
    selection.decision.sentence,
    f"Notebook 04 scales with {chosen}: α, β, γ = {alpha}, {beta}, {gamma} "
    f"({format_accuracy(winner['eval']['accuracy'], winner['eval']['n'])} with {selection.rungs[-1].epochs:g} equivalent epochs).",
])
