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
# architectures and the φ values the profile affords on the selection budget, asks **which φ the budget should
# buy** (φ at equal training minutes, with a declared rule), then trains the **final model** at the profile's φ
# on the full training split.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0
phi_ablation = None  # None: the committed reports/ablation-phi.json of this checkout (effnb ablate --phi)

# %% [markdown]
# The data and the device, as in every notebook; the baseline comes from notebook 02 and the grid's winner
# (α, β, γ, its network and its result) from notebook 03.

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from effnb.nn import NetSpec, scale, scaling_table
from effnb.report import plot_accuracy_vs_compute, plot_learning_curves, results_frame
from effnb.study import BaselinesOutput, describe_plan, final_time_limit, fix_final_epochs, format_accuracy, measure_candidate, open_study, read_plan
from effnb.study.ablation import PHI_RECORD, PHI_RULE, check_phi_provenance, phi_decision, phi_points
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
# ## The φ values on the selection budget
# φ = 0 is the baseline (notebook 02) and the grid's φ its winner (notebook 03), both from the last rung of
# their selections, read from their notebooks' outputs; larger φ the profile affords are trained here on the same
# images for the same number of epochs and measured the same way. Equal epochs are not equal minutes: a larger φ
# costs more per image, so this table says what each φ costs, not which one the budget should buy.

# %%
phis = [0, grid["phi"], *sorted(set(p.selection.scaling_phis) - {0, grid["phi"]})]
sigma = study.output("data")["sigma"]
runs = [base_result, grid_result] + [
    measure_candidate(study, scale(base, alpha, beta, gamma, phi), p.selection.epochs, sigma)
    for phi in phis[2:]]
curve = results_frame(runs)
curve.insert(0, "phi", phis)
display(curve.set_index("phi"))

# %% [markdown]
# ## Which φ the budget should buy
# At **equal training minutes** a smaller φ trains for more epochs and a larger one for fewer. `effnb ablate --phi`
# trains the study's final network at φ = 2, 1, 3 and 0 with the profile's recipe, φ = 2 for the profile's
# final-model minutes and the others for as many epochs as fit in the same minutes, and scores each at its FixRes
# resolution after BN recalibration on the `test` images. That run takes hours, so this notebook reads its
# committed record and checks where it came from; the rule below was declared before the record was read here.

# %%
record_path = Path(phi_ablation) if phi_ablation else PHI_RECORD
phi_record = json.loads(record_path.read_text()) if record_path.is_file() else None
display(Markdown(PHI_RULE.statement()))
if phi_record is None:
    display(Markdown(f"No `effnb ablate --phi` record at `{record_path.name}`: run `effnb ablate --phi --profile "
                     f"{p.name}` to answer this question."))
else:
    display(Markdown(f"The record's command: `{phi_record['command']}`. Where it came from, checked against this run:"))
    display(pd.DataFrame(check_phi_provenance(record_path, phi_record, p)).set_index("fact"))
    phi_choice = phi_decision(phi_record)
    display(phi_choice.table())
    display(Markdown(f"**Decision:** {phi_choice.sentence}"))
    fig = plot_accuracy_vs_compute(phi_points(phi_record, len(study.splits["train"]), phi_choice.chosen), named=True)

# %% [markdown]
# ## The final model
# Trained on the whole `train` split (the seed: φ = 4; the author's published code: 150 epochs). With a plan
# (`effnb study --budget-minutes M`) its epochs are fixed here, once: the minutes left after the earlier notebooks,
# the reserve for 05 and 06 and the margin buy as many equivalent epochs as fit at the slower of two measures of
# this network's speed, its step timed now and the whole epochs the selection trained it for (a short timing alone
# has run 1.6 times too fast), each epoch's validation pass counted; without a plan, the profile's epochs. The run
# is then held to its minutes: after each epoch the slower estimate, scaled by how much slower the last five epochs
# ran than it said, projects the rest, and the schedule is re-planned to the most epochs that fit: a run that would
# end late shortens (the learning rate still anneals and the input size still reaches k_train, sooner), and one ahead
# lengthens, to at most `effnb.study.budget.LONGER` times its epochs, so that minutes the cautious estimate left over
# still buy epochs. Every epoch decides again, so minutes an early decision gave up (the first, small epochs run
# slower against the estimate than the large ones) come back. Each epoch is checkpointed: an interrupted run resumes
# from its last finished epoch, with the same epochs.

# %%
final_epochs = fix_final_epochs(study, final_spec)
display(Markdown(describe_plan(read_plan(study.artifacts_dir)) if read_plan(study.artifacts_dir) else
                 f"No plan: the profile's {final_epochs} equivalent epochs."))
final = run_experiment(study.final_experiment(final_spec, final_epochs), study.cache, study.artifacts_dir, study.device,
                       time_limit=final_time_limit(study, final_spec))
display(results_frame([final]))
fig = plot_learning_curves([final])

# %% [markdown]
# ## What this shows

# %%
first, last = curve.iloc[0], curve.iloc[-1]
if phi_record is None:
    phi_finding = "No `effnb ablate --phi` record was found, so which φ the budget should buy is not answered here."
else:
    buys = phi_choice.chosen.removeprefix("φ = ")
    phi_finding = (f"At equal training minutes (the committed `effnb ablate --phi` record, profile "
                   f"`{check_phi_provenance(record_path, phi_record, p)[1]['recorded']}`): {phi_choice.sentence} "
                   + (f"This profile's final model uses φ = {p.final.phi}, the φ the rule keeps."
                      if buys == str(p.final.phi) else
                      f"This profile's final model uses φ = {p.final.phi}, which the rule, Holm-corrected, does not "
                      f"show to beat φ = {buys} beyond the noise: at these minutes the two are not told apart."))
study.conclude("scaling", {
    "phi": p.final.phi, "alpha": alpha, "beta": beta, "gamma": gamma, "spec": final_spec.to_dict(),
    "checkpoint": final["checkpoint"], "eval": final["eval"], "train_seconds": final["train_seconds"],
    "curve": curve.reset_index().to_dict(orient="records"),
    "phi_decision": phi_choice.as_dict() if phi_record else None,
}, [
    f"On the selection budget (equal epochs, not equal minutes), φ = {last['phi']} has "
    f"{last['MFLOPs (2/MAC)'] / first['MFLOPs (2/MAC)']:.1f} times the forward FLOPs of φ = 0 "
    f"({first['MFLOPs (2/MAC)']:.1f} → {last['MFLOPs (2/MAC)']:.1f} MFLOPs) and reaches {last['test acc %']:.2f} % "
    f"against {first['test acc %']:.2f} % [{last['95 % interval']} against {first['95 % interval']}].",
    phi_finding,
    f"The final model (φ = {p.final.phi}, {final_spec.resolution} px, {final['params']:,} parameters) trained "
    f"{len(final['history'])} epoch(s) on {final['n_train']:,} images in {final['train_seconds'] / 60:.1f} min and "
    f"reaches {format_accuracy(final['eval']['accuracy'], final['eval']['n'])} on `test` at its training resolution."
    + (f" Its time limit re-planned its schedule to {final['replanned_to']} real epochs "
       f"(planned: {final['train_config']['epochs']})." if final.get("replanned_to") else ""),
])
