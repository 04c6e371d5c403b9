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
# # 01 · The data, the training crop, and σ
#
# Cats vs dogs in the `PetImages/{Cat,Dog}` layout. This notebook decodes every image **once** into a
# uint8 cache (so no epoch decodes a JPEG again), makes the three splits (`train`, `test` for every
# selection decision, and `test2`, touched only by the final notebook), shows the seed's training
# augmentation, and measures **σ**, the mean proportion of the image that the training crop keeps.
# From σ follows FixRes' **r** and the test resolution at which objects look as large as in training.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full (see effnb/profiles.py)
data_dir = None  # class-per-folder images; None: $EFFNB_DATA_DIR, else download the real archive
artifacts_dir = "../artifacts"
seed = 0

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from effnb.fixres import estimate_sigma, recommended_test_resolution, resolution_ratio, sigma_distribution
from effnb.plots import plot_histogram, plot_sizes, show_images
from effnb.study import prepare_study, run_info, write_stage
from effnb.transforms import P_RANGE, eval_batch, image_test_size, train_batch
from effnb.widgets import crop_explorer, draw_crop, show_explorer

study = prepare_study(profile, data_dir, artifacts_dir, seed)
cache, splits = study.cache, study.splits
print(study.profile.summary())
pd.Series(run_info(study.profile))

# %% [markdown]
# ## What is there
# Counts per class and split, and every file the loader skipped (empty, not an image, undecodable,
# smaller than the minimum side) with its reason.

# %%
counts = pd.DataFrame({name: np.bincount(cache.labels[idx], minlength=len(cache.classes)) for name, idx in splits.items()},
                      index=cache.classes)
counts.loc["total"] = counts.sum()
display(counts)
skipped = pd.DataFrame(cache.skipped, columns=["file", "reason"])
print(f"{len(cache)} images decoded, {len(skipped)} skipped")
display(skipped.head(20))

# %%
fig = plot_sizes(np.asarray(cache.hw))

# %% [markdown]
# ## Example images, and the seed's training augmentation
# Training crops are squares whose side is a proportion p ~ U(0.2, 0.7) of the image's longer side
# (the largest square when the image is too wide for that), resized to 64 px, flipped, with
# brightness and saturation jitter. The test view resizes the shorter side to 72 px and centre-crops 64.

# %%
k_train = 64
examples = np.asarray(splits["train"][:8])
images = torch.from_numpy(cache.images[examples].copy())
hw = torch.from_numpy(np.asarray(cache.hw[examples]))
gen = torch.Generator().manual_seed(seed)
views = [eval_batch(images, hw, k_train)] + [train_batch(images, hw, k_train, generator=gen)[0] for _ in range(3)]
titles = [cache.classes[cache.labels[i]] for i in examples]
fig = show_images(torch.cat(views), titles * 4, ncols=8)
fig.suptitle("row 1: test view; rows 2-4: random training crops", y=1.02);

# %% [markdown]
# ## σ, r and the test resolution
# σ is measured by running the training crop sampler over every training image (the aspect-ratio rule
# lowers it below the mean of U(0.2, 0.7) = 0.45 only for images wider than 1/0.7 ≈ 1.43).

# %%
train_hw = np.asarray(cache.hw[splits["train"]])
proportions = sigma_distribution(train_hw, P_RANGE, draws_per_image=4, seed=seed)
sigma = estimate_sigma(train_hw, P_RANGE, draws_per_image=4, seed=seed)
r = resolution_ratio(sigma, image_test_size(k_train), k_train)
k_test, k_image_test = recommended_test_resolution(k_train, sigma)
fig = plot_histogram(proportions, "crop side / longer image side", "σ")
pd.Series({"sigma": sigma, "seed's sigma": 0.444, "r = sigma * k_image_test / k_train": r,
           "seed's r": 0.444 * 72 / 64, "recommended k_test at k_train=64": k_test, "k_image_test": k_image_test})

# %% [markdown]
# ## Explore: crop proportion and apparent object size
# In JupyterLab the sliders redraw; the report shows a static sweep of the same picture.

# %%
show_explorer(crop_explorer, cache, k_train)
for p in (0.2, 0.45, 0.7):
    draw_crop(cache, int(examples[0]), p, k_train, k_test)

# %%
write_stage(artifacts_dir, "data", {
    "run": run_info(study.profile), "images": len(cache), "classes": cache.classes, "skipped": len(cache.skipped),
    "splits": {k: len(v) for k, v in splits.items()}, "sigma": sigma, "r": r,
    "k_train": k_train, "recommended_k_test": k_test, "recommended_k_image_test": k_image_test})
