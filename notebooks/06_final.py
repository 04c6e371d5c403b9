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
# # 06 · Final results on a never-used test split
#
# Every decision so far (baseline, α β γ, the FixRes resolution) looked at the `test` split. As the
# seed did, the final numbers come from a different random split of the same size, `test2`, that no
# earlier notebook touched: the seed's final table (trained without fine-tuning at the training
# resolution vs with fine-tuning at the larger resolution), the cheaper FixRes variants, the seed's
# published numbers beside them, and examples of errors.

# %% tags=["parameters"]
profile = "smoke"
data_dir = None
artifacts_dir = "../artifacts"
seed = 0

# %%
import pandas as pd
import torch
from IPython.display import display

from effnb.atomic import write_json
from effnb.checkpoint import load_checkpoint
from effnb.device import pick_device
from effnb.engine import Feed, evaluate, predict
from effnb.plots import show_images
from effnb.study import prepare_study, read_stage, run_info
from effnb.widgets import prediction_browser, show_explorer

study = prepare_study(profile, data_dir, artifacts_dir, seed)
p = study.profile
scaling, ft = read_stage(artifacts_dir, "scaling"), read_stage(artifacts_dir, "finetune")
device = pick_device()
test2 = study.splits["test2"]
k_train, k_test = ft["k_train"], ft["k_test"]
print(p.summary(), "| device:", device, f"| test2: {len(test2)} images")
pd.Series(run_info(p))

# %%
models = [("trained without fine-tuning", scaling["checkpoint"], k_train),
          ("trained without fine-tuning, tested at the FixRes resolution", scaling["checkpoint"], k_test)]
models += [(v["label"], v["checkpoint"], k_test) for v in ft["variants"].values()]
rows = []
for label, checkpoint, k in models:
    model, meta = load_checkpoint(checkpoint)
    m = evaluate(model, Feed(study.cache, test2, k, "eval", batch_size=100), device)
    rows.append({"label": label, "checkpoint": checkpoint, "k_test": k, "k_image_test": m["k_image_test"],
                 "loss": m["loss"], "accuracy": m["accuracy"], "n": m["n"]})
final = pd.DataFrame(rows)
display(final.drop(columns="checkpoint").round(4))

# %% [markdown]
# ## Beside the seed
# The seed trained φ = 4 for 150 epochs and fine-tuned 40 epochs on a GPU; the profile here is printed
# at the top. Its table had two rows:

# %%
no_ft, full_ft = rows[0], next(r for r in rows if r["label"] == ft["variants"]["full"]["label"])
side = pd.DataFrame({
    "seed loss": [0.2520, 0.1277], "seed acc %": [89.77, 94.66],
    "this run loss": [no_ft["loss"], full_ft["loss"]],
    "this run acc %": [100 * no_ft["accuracy"], 100 * full_ft["accuracy"]]},
    index=["Trained without fine tuning", "Trained with fine tuning"]).round(4)
display(side)
gain = 100 * (full_ft["accuracy"] - no_ft["accuracy"])
summary = (f"profile {p.name}: phi={scaling['phi']} trained at {k_train}px, fine-tuned and tested at {k_test}px; "
           f"fine-tuning at the test resolution gains {gain:+.2f} points on test2 (seed: +4.89)")
print(summary)

# %% [markdown]
# ## Errors of the fine-tuned model

# %%
model, meta = load_checkpoint(full_ft["checkpoint"])
feed = Feed(study.cache, test2, k_test, "eval", batch_size=100)
logits, labels = predict(model, feed, device)
probs = logits.softmax(1)
wrong = (probs.argmax(1) != labels).nonzero().flatten()
confident = wrong[probs[wrong].max(1).values.argsort(descending=True)][:16]
images = torch.cat([x for x, _ in Feed(study.cache, test2[confident.numpy()], k_test, "eval").batches()]) if len(confident) else torch.empty(0)
if len(confident):
    fig = show_images(images, [f"{meta['classes'][labels[i]]} → {meta['classes'][probs[i].argmax()]} ({probs[i].max():.2f})"
                               for i in confident], ncols=8)
    fig.suptitle("the most confident errors on test2 (true → predicted)", y=1.02)

# %% [markdown]
# In JupyterLab: browse the predictions page by page (the report shows the static grid above).

# %%
browse_idx = test2[:256]
browse_images = torch.cat([x for x, _ in Feed(study.cache, browse_idx, k_test, "eval").batches()])
show_explorer(prediction_browser, browse_images, labels[:256], probs[:256], meta["classes"], show_images)

# %%
write_json(f"{artifacts_dir}/final.json", {"run": run_info(p), "summary": summary, "test2_images": len(test2),
                                            "rows": rows, "seed": side.reset_index().to_dict(orient="records")})
