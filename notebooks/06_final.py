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
# # 06 · Final results on the held-out split `test2`
#
# Every decision so far (baseline, α β γ, the FixRes resolution) looked at the `test` split. As the
# seed did, the final numbers come from a different random split of the same size, `test2`, that no
# decision of this run looked at (notebooks 01–05 never reach it; every read of it is recorded, below): the
# seed's final table (trained without fine-tuning at the training resolution vs with fine-tuning at the larger
# resolution), the cheaper FixRes variants, the seed's published numbers beside them, and examples of errors.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0

# %% [markdown]
# The data and the device, as in every notebook; the final model comes from notebook 04, the test resolution
# and the fine-tuned variants from notebook 05.

# %%
import json

import pandas as pd
import torch
from IPython.display import Markdown, display

from effnb import seed_study
from effnb.report import plot_hardest_images, plot_prediction_grid, prediction_browser, show_explorer, show_images, show_jpeg
from effnb.study import FIXRES_STEPS, BaselinesOutput, FinetuneOutput, accuracy_interval, describe_hardest, format_accuracy, image_statistics, open_study, predict_models, provenance, read_test2
from effnb.study.analysis import beside_the_seed
from effnb.study.holdout import RECORD as TEST2_RECORD
from effnb.study.holdout import reads_of, reads_table
from effnb.train import Feed

study = open_study("final", profile, data_dir, artifacts_dir, seed)
scaling, ft = study.output("scaling"), study.output("finetune", FinetuneOutput)
test2 = read_test2(study)  # the one place the study reads its final split
k_train = ft.k_train
preprocessing = {"k_test": ft.k_test, "k_image_test": ft.k_image_test}  # they travel together

# %% [markdown]
# ## The FixRes pipeline on `test2`
# Each step of the pipeline, evaluated once on the `test2` images, with the CPU time it added; last, the
# chosen step again with horizontal-flip test-time augmentation (the table keeps the row without it). The model the
# study chose is that TTA row where notebook 05's TTA rule chose flip TTA on `test`, else the chosen step's row.

# %%
steps = {"trained": (scaling["checkpoint"], {"k_test": k_train, "k_image_test": None}),
         "larger_test": (scaling["checkpoint"], preprocessing)} | \
        {vid: (v.checkpoint, preprocessing) for vid, v in ft.variants.items()}
test2_predictions = predict_models(steps, study.cache, test2, study.device)  # kept for the errors and the analysis
rows = {r["id"]: {**r, "label": FIXRES_STEPS[r["id"]],
                  "extra_seconds": ft.variants[r["id"]].train_seconds if r["id"] in ft.variants else 0.0}
        for r in test2_predictions.rows}
step = rows[ft.chosen_step]
# Horizontal-flip test-time augmentation: one more row for the chosen step, each image's logits averaged with its
# mirror's (twice the evaluation cost, no training); notebook 05 decided on `test` whether it is the chosen model.
tta_predictions = predict_models({"tta": steps[step["id"]]}, study.cache, test2, study.device, tta=True)
tta = {**tta_predictions.rows[0], "label": f"{step['label']} + horizontal-flip TTA", "extra_seconds": step["extra_seconds"]}
chosen, chosen_probs = (tta, tta_predictions.probs["tta"]) if ft.tta else (step, test2_predictions.probs[step["id"]])
final = pd.DataFrame([{"model": r["label"], "test res (px)": r["k_test"], "loss": r["loss"],
                       "accuracy %": 100 * r["accuracy"],
                       "95 % interval": "{:.1f}–{:.1f} %".format(*(100 * v for v in accuracy_interval(r["accuracy"], r["n"]))),
                       "extra CPU s": r["extra_seconds"]} for r in [*rows.values(), tta]]).set_index("model")
display(final.round({"loss": 4, "accuracy %": 2, "extra CPU s": 1}))

# %% [markdown]
# ## Beside the seed
# Seed 000's final table had two rows. Beside its row without fine-tuning stands the model as trained; beside its
# row with fine-tuning, the model this study chose. What differs between them, and how far the seed's figure can be
# trusted, follows the table.

# %%
no_ft, full_ft = rows["trained"], rows["full"]
side, differences = beside_the_seed(no_ft, chosen, full_ft, study.recipe, study.profile.final.phi,
                                    (scaling["train_seconds"] + chosen["extra_seconds"]) / 60,
                                    study.run_info()["machine"])
display(side)
display(Markdown("\n".join(f"- {line}" for line in differences)))

# %% [markdown]
# ## Every read of `test2`
# The guard (`effnb.study.holdout`) records each read of `test2` in this artifacts folder; the publish step adds them
# to `reports/models/test2-reads.json`, which keeps the reads of earlier folders too (the index shows that history).

# %%
reads = reads_of(json.loads((study.artifacts_dir / TEST2_RECORD).read_text()))
display(pd.DataFrame(reads_table(reads)).set_index("read"))

# %% [markdown]
# ## Errors of the chosen model
# The model notebook 05 chose (its FixRes step, with flip TTA where chosen): its most confident mistakes on `test2`.

# %%
classes = test2_predictions.classes
probs, labels = torch.from_numpy(chosen_probs), torch.from_numpy(test2_predictions.labels)
wrong = (probs.argmax(1) != labels).nonzero().flatten()
confident = wrong[probs[wrong].max(1).values.argsort(descending=True)][:16]
if len(confident):
    images = torch.cat([x for x, _ in Feed(study.cache, test2[confident.numpy()], preprocessing["k_test"], "eval",
                                           k_image_test=preprocessing["k_image_test"]).batches()])
    titles = [f"{classes[labels[i]]} → {classes[probs[i].argmax()]} ({probs[i].max():.2f})"
              for i in confident]
    show_images(images, titles, ncols=8, title="the most confident errors on test2 (true → predicted, probability)")
else:
    display(Markdown("No errors on `test2`."))

# %% [markdown]
# In JupyterLab: browse the first 256 predictions page by page, all of them or only the errors (the report
# shows the static grid above).

# %%
browse_idx = test2[:256]
browse_images = torch.cat([x for x, _ in Feed(study.cache, browse_idx, preprocessing["k_test"], "eval",
                                              k_image_test=preprocessing["k_image_test"]).batches()])
show_explorer(prediction_browser, browse_images, labels[:256], probs[:256], classes)

# %% [markdown]
# ## Predictions analysis: which images every model gets wrong
# Seed 001 (§6.3) drew every model against every validation image, mistakes in black: images that many
# models get wrong show up as lines. Here the rows are the five steps above (their `test2` predictions are
# reused, not computed again) and the three baselines of notebook 02 at their own 64 px; the columns are the
# `test2` images, first in split order, then sorted by how many models get them wrong.

# %%
baselines = study.output("baselines", BaselinesOutput).results
everyone = (test2_predictions | predict_models({f"baseline {n}": (r.checkpoint, None) for n, r in baselines.items()},
                                               study.cache, test2, study.device)).renamed(FIXRES_STEPS)
fig = plot_prediction_grid(everyone.correct())
analysis = everyone.summary()
print(f"{analysis['all_wrong']} of {analysis['images']} test2 images are misclassified by every one of the "
      f"{len(everyone.models)} models; {analysis['any_wrong']} by at least one.")

# %% [markdown]
# The hardest images as the fine-tuned model sees them, hardest first, with each model's probability of the
# true class (below 0.5 is a mistake):

# %%
hardest = everyone.hardest(12)
hard_images = torch.cat([x for x, _ in Feed(study.cache, hardest["index"].to_numpy(), preprocessing["k_test"], "eval",
                                            k_image_test=preprocessing["k_image_test"]).batches()])
show_jpeg(plot_hardest_images(hard_images, hardest, everyone.models))
display(Markdown(describe_hardest(everyone, image_statistics(study.cache, test2))))

# %% [markdown]
# ## What this shows

# %%
gain = 100 * (full_ft["accuracy"] - no_ft["accuracy"])
free = 100 * (rows["larger_test"]["accuracy"] - no_ft["accuracy"])
decisions = {"baseline": study.output("baselines")["selection"]["decision"],
             "grid": study.output("grid")["selection"]["decision"]} | ft.decisions
study.conclude("final", {"test2_images": len(test2), "rows": [study.portable(r) for r in rows.values()],
                         "chosen_step": step["id"], "chosen_tta": ft.tta, "tta": study.portable(tta),
                         "seed": side.reset_index().to_dict(orient="records"), "decisions": decisions,
                         "test2_reads": len(reads),
                         "provenance": provenance(study),
                         "analysis": analysis | {"hardest": hardest["index"].tolist()}}, [
    f"On {len(test2):,} `test2` images, the model trained at {k_train} px reaches {format_accuracy(no_ft['accuracy'], no_ft['n'])}; "
    f"fine-tuned as the author's published code does and tested at {preprocessing['k_test']} px, {format_accuracy(full_ft['accuracy'], full_ft['n'])} "
    f"({gain:+.2f} points; the seed: {100 * seed_study.FINE_TUNING_GAIN:+.2f}).",
    f"Testing at the FixRes resolution without any fine-tuning accounts for {free:+.2f} points of that; BN "
    f"recalibration alone gives {format_accuracy(rows['bn_recal']['accuracy'], rows['bn_recal']['n'])} for "
    f"{rows['bn_recal']['extra_seconds']:.0f} s of CPU.",
    f"The model the study chose (“{chosen['label']}”) reaches {format_accuracy(chosen['accuracy'], chosen['n'])} and "
    f"makes {len(wrong):,} errors on `test2`; {analysis['all_wrong']:,} images are misclassified "
    f"by all {len(everyone.models)} models (the {len(baselines)} baselines included).",
    f"Averaging each image's logits with its mirror's (flip TTA, twice the evaluation cost) gives “{step['label']}” "
    f"{format_accuracy(tta['accuracy'], tta['n'])} ({100 * (tta['accuracy'] - step['accuracy']):+.2f} points); notebook "
    f"05's rule on `test` chose {'flip TTA' if ft.tta else 'one forward pass'}.",
    f"Seed 000 reports {100 * seed_study.FINAL['with fine-tuning'].accuracy:.2f} % with fine-tuning at φ = "
    f"{seed_study.FINAL_PHI.value} on a GPU; beside it, the chosen model reaches {100 * chosen['accuracy']:.2f} % at "
    f"φ = {study.profile.final.phi} on this machine's CPU. The seed's figure may be optimistic: its author's "
    f"published code validates on the test set it reports.",
    f"`test2` was read {len(reads)} time(s) in this artifacts folder, all under this run's choices (the guard refuses "
    f"any other); `reports/models/test2-reads.json` keeps the reads of earlier folders too.",
])
