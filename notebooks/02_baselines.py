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
# with larger kernels, **C** shallower and wider with small kernels. All three train here on the same
# images for the same budget and are compared on the `test` split.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = "../artifacts"
seed = 0

# %% [markdown]
# The data, the splits and the device, as in every notebook; notebook 01 must have run first.

# %%
import pandas as pd
from IPython.display import Markdown, display

from effnb import seed_results
from effnb.experiments import run_experiment
from effnb.flops import count_flops
from effnb.model import BASELINES
from effnb.plots import plot_learning_curves, results_frame
from effnb.stats import format_accuracy
from effnb.study import open_study

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
# ## Training all three on the same budget
# Same training images, epochs and evaluation images for each; the learning curves follow.

# %%
results = {name: run_experiment(study.selection_experiment(spec), study.cache, artifacts_dir, study.device)
           for name, spec in BASELINES.items()}
table = results_frame(list(results.values()))
table["seed test acc %"] = [100 * seed_results.BASELINES[n].accuracy for n in results]
display(table)
fig = plot_learning_curves(list(results.values()))

# %% [markdown]
# ## What this shows

# %%
best = max(results, key=lambda n: results[n]["eval"]["accuracy"])
accuracy = {n: format_accuracy(r["eval"]["accuracy"], r["eval"]["n"]) for n, r in results.items()}
study.conclude("baselines", {"chosen": "C", "best_in_this_run": best, "results": results}, [
    "On the same budget the baselines reach " + "; ".join(f"{n} {accuracy[n]}" for n in results) + " on `test`.",
    f"{best} is the most accurate here; the seed's best was C ({100 * seed_results.BASELINES['C'].accuracy:.2f} %). The study continues with C, the seed's "
    f"choice, so that the grid and scaling steps follow the seed's path.",
])
