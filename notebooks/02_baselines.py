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
# # 02 · Three hand-designed baselines
#
# Compound scaling only amplifies the baseline it starts from, so the baseline matters. The seed
# designed three MBConv networks of about 50k parameters: **A** deeper and thinner, **B** medium depth
# with larger kernels, **C** shallower and wider with small kernels, and chose C. The seed describes A and
# B only in words; their layers here are ours. All three train here on the same images, a successive-halving
# selection spends the budget on the promising ones, and a rule fixed in advance decides on the `test` split.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0

# %% [markdown]
# The data, the splits and the device, as in every notebook; notebook 01 must have run first.

# %%
import pandas as pd
from IPython.display import Markdown, display

from effnb import seed_study
from effnb.nn import BASELINES, count_flops
from effnb.report import plot_learning_curves, plot_selection, results_frame
from effnb.study import DecisionRule, format_accuracy, measurement, open_study, select

study = open_study("baselines", profile, data_dir, artifacts_dir, seed)

# %% [markdown]
# ## The architectures
# The seed's table reads "Resolution" as each stage's input; strides fall on stage 1 (64→32),
# stage 2 (32→16) and stage 5 (16→8). FLOPs are forward FLOPs of one image, counted by
# `torch.utils.flop_counter` (a multiply-add counts 2).

# %%
for name, spec in BASELINES.items():
    display(Markdown(f"**Baseline {name}**: {count_flops(spec) / 1e6:.2f} MFLOPs at {spec.resolution} px"))
    display(pd.DataFrame(spec.table()).set_index("stage"))

# %% [markdown]
# ## The decision rule, fixed before any result
# The study follows the seed's choice unless this run shows, beyond the noise, that another baseline is better.

# %%
sigma = study.output("data")["sigma"]
rule = DecisionRule("which baseline to scale", seed_study.CHOSEN_BASELINE.value, "the seed's choice")
display(Markdown(f"{rule.statement()} {measurement(study, sigma)}"))

# %% [markdown]
# ## Successive halving
# All three train briefly; the better of A and B trains again, beside C, with the full selection budget.
# Every run sees the same training images with the same seed.

# %%
selection = select(study, BASELINES, rule, sigma)
runs = selection.table()
display(runs.set_index(["rung", "candidate"]))

# %% [markdown]
# ## Accuracy against size and cost
# The seed gives all three "roughly 50,000 parameters"; here they differ (C has the fewest), so each run's
# accuracy is shown against its parameters and its forward FLOPs rather than equalising their sizes.

# %%
table = results_frame([selection.final(n) for n in selection.rungs[-1].results])
table["seed test acc %"] = [100 * seed_study.BASELINES[n].accuracy for n in selection.rungs[-1].results]
display(table)
fig = plot_selection(runs)

# %% [markdown]
# ## The decision
# Each challenger against C on the same images, on the last rung: accuracy difference with its 95 % interval,
# the images only one of the two gets right, and the exact McNemar test.

# %%
display(selection.decision.table())
display(Markdown(f"**Decision:** {selection.decision.sentence}"))
fig = plot_learning_curves([selection.final(n) for n in selection.rungs[-1].results])

# %% [markdown]
# ## What this shows

# %%
final_rung = selection.rungs[-1].results
accuracy = {n: format_accuracy(r["eval"]["accuracy"], r["eval"]["n"]) for n, r in final_rung.items()}
study.conclude("baselines", {"chosen": selection.chosen, "results": selection.latest(), "selection": selection.as_dict()}, [
    f"With {selection.rungs[-1].epochs:g} equivalent epochs each, " + "; ".join(f"{n} reaches {accuracy[n]}" for n in final_rung)
    + f" (the seed: C {100 * seed_study.BASELINES['C'].accuracy:.2f} %).",
    selection.decision.sentence,
    f"The study scales baseline {selection.chosen} from here on.",
])
