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
# # 01 · The data, the training crop, and σ
#
# Cats vs dogs in the `PetImages/{Cat,Dog}` layout. This notebook decodes every image **once** into a
# uint8 cache (so no epoch decodes a JPEG again), makes the three splits (`train`, `test` for every
# selection decision, and `test2`, touched only by the final notebook), shows the seed's training
# augmentation, and measures **σ**, the mean proportion of the image that the training crop keeps.
# From σ follows FixRes' **r**, and from r the test resolution at which objects look as large as in training.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full (see effnb/study/profiles.py)
data_dir = None  # None: $EFFNB_DATA_DIR, else ../shared/data/PetImages beside the repository, else download
artifacts_dir = None  # None: artifacts/ at the top of the repository, whatever the working folder
seed = 0

# %% [markdown]
# Every notebook starts the same way: find and decode the images (read back from the cache after the
# first time), make the splits, pick the device, and state the run.

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from effnb import seed_study
from effnb.data import P_RANGE, TestSize, eval_batch, expected_sigma, find_duplicates, recommended_test_resolution, resolution_ratio, sigma_distribution, train_batch
from effnb.report import crop_explorer, draw_crop, plot_histogram, plot_sizes, show_explorer, show_images, show_jpeg, size_summary
from effnb.study import describe_plan, open_study, planned_against_actual, read_plan

study = open_study("data", profile, data_dir, artifacts_dir, seed)
cache, splits = study.cache, study.splits

# %% [markdown]
# ## What is there
# Counts per class and split, and every file the loader skipped (empty, not an image, undecodable,
# smaller than the minimum side) with its reason.

# %%
counts = study.label_counts()
sizes = {name: int(n) for name, n in counts.loc["total"].items()}
display(counts)
skipped = pd.DataFrame(cache.skipped, columns=["file", "reason"])
display(Markdown(f"{len(cache):,} images decoded, {len(skipped):,} skipped."))
if len(skipped):
    display(skipped.head(20))

# %% [markdown]
# ## The plan: the budget in minutes on this machine
# `effnb study --budget-minutes M` (the cpu profile: 120) times the study's own training step on this machine
# before any notebook runs, then plans every notebook so the study ends within M minutes; the final model's
# epochs are fixed when notebook 04 starts, from the network chosen and the minutes left. Without a plan
# (a notebook run by hand, or `--budget-minutes 0`) the profile's fixed epochs apply.

# %%
plan = read_plan(study.artifacts_dir)
display(Markdown(describe_plan(plan) if plan else "No plan in the artifacts: the profile's fixed epochs apply."))
if plan and "timings" in plan:
    display(pd.DataFrame(plan["timings"]).rename(columns={"network": "network", "size": "px", "gflops": "GFLOPs",
                                                          "train_img_s": "train img/s", "eval_img_s": "eval img/s"})
            .round({"GFLOPs": 4, "train img/s": 0, "eval img/s": 0}))
if plan:
    display(pd.DataFrame(planned_against_actual(plan, {})).drop(columns="actual min").set_index("notebook"))

# %% [markdown]
# ## Copies of one photo across the splits
# The folder holds some photos twice: the same file under two names, or the same photo re-encoded, resized or
# retouched. A test image whose copy is in `train` tests memory, not generalisation. Exact copies share the
# SHA-256 of their bytes. Near copies are found by the DCT perceptual hash (pHash, Zauner 2010, as
# `imagehash.phash` computes it: grayscale at 32×32, 2-D DCT, the 8×8 lowest frequencies compared with their
# median, 64 bits), computed from the decoded cache, when two hashes differ in at most 6 bits; all pairs are
# compared (XOR and bit count). The threshold was chosen by looking at the pairs of the full folder: at 0-2 bits
# every pair looked at was one photo; at 6 bits four of five were (three are the "photo unavailable" placeholder,
# filed under both classes) and one was a cat and a dog; at 8 bits most pairs were different animals. Images
# linked by either relation form a group, and each group is kept inside one split: its members join the split of
# its first member, each swapped with an image of the same class that has no copy, so every split keeps its size
# and class counts. Below: the counts (a group with two labels is one photo filed under both classes, label noise
# that keeping it in one split does not remove, or a false match such as the cat and dog at 6 bits), how many
# groups a split that ignored them would spread over two splits, how many the study's splits do, and the most
# distant pairs still counted as copies.

# %%
dups = find_duplicates(cache, study.root)
across = study.groups_across_splits(dups.groups)
before, after = across.values()
dup_counts = dups.counts(cache.labels) | across
display(pd.Series(dup_counts).to_frame(f"count (pHash ≤ {dups.threshold} bits)"))
pairs = dups.examples(8)
if len(pairs):
    titles = [title for i, j, d in pairs for title in (cache.paths[i], f"{cache.paths[j]} ({d} bits)")]
    show_images(torch.from_numpy(cache.images[pairs[:, :2].ravel()].copy()), titles, ncols=4, size=2.2,
                normalized=False, title="near copies, side by side, most distant first")
else:
    display(Markdown("No near copies among these images."))

# %% [markdown]
# The cache keeps each image's aspect ratio, with its longer side resized to the cache side; the
# training crop's aspect-ratio rule depends on these shapes.

# %%
hw = np.asarray(cache.hw)
display(Markdown(size_summary(hw)))
fig = plot_sizes(hw)

# %% [markdown]
# ## Example images, the seed's training crop and the recipe's
# Training crops are squares whose side is a proportion p of the image's longer side (the largest square
# when the image is too wide for that), resized to the training resolution, flipped, with brightness and
# saturation jitter. The seed draws p ~ U(0.2, 0.7); the study's recipe ends training on weaker crops (its
# range is printed below). The test view resizes the shorter side to 72 px and centre-crops 64.

# %%
k_train = 64
examples = np.asarray(splits["train"][:8])
images = torch.from_numpy(cache.images[examples].copy())
example_hw = torch.from_numpy(hw[examples])
gen = torch.Generator().manual_seed(seed)
crops = {"the seed's crop": P_RANGE, f"the recipe's crop ({study.recipe.name})": tuple(study.recipe.train.p_range)}
views = [eval_batch(images, example_hw, k_train)] + [
    train_batch(images, example_hw, k_train, generator=gen, p_range=p_range)[0] for p_range in crops.values()
    for _ in range(2)]
titles = [cache.classes[cache.labels[i]] for i in examples]
rows = "; ".join(f"rows {2 + 2 * i}-{3 + 2 * i}: {name} U{p_range}" for i, (name, p_range) in enumerate(crops.items()))
show_images(torch.cat(views), titles * 5, ncols=8, title=f"row 1: test view; {rows}")

# %% [markdown]
# ## σ, r and the test resolution
# σ is measured by running the training crop sampler itself over every training image, four draws each.
# The seed's crop keeps U(0.2, 0.7) of the longer side, so σ = 0.45 on square images and a little less on
# images wider than 1/0.7 ≈ 1.43; the same mean can be computed exactly from the images' shapes. The study's
# recipe ends training on weaker crops (its own σ below, chosen by the ablation in `reports/ablation.md`), and
# that σ is the one handed to the later notebooks. r = σ · k_image_test / k_train follows, shown here for the
# seed's 64 px; notebook 05 computes the test resolution for the final model's own training resolution.

# %%
crop = study.recipe.train.p_range
proportions = sigma_distribution(hw[splits["train"]], crop, draws_per_image=4, seed=seed)
sigma, sigma_se = float(proportions.mean()), float(proportions.std(ddof=1) / np.sqrt(len(proportions)))
sigma_exact = expected_sigma(hw[splits["train"]], crop)
sigma_seed_study_crop = expected_sigma(hw[splits["train"]], P_RANGE)
r = resolution_ratio(sigma, TestSize.at(k_train).k_image_test, k_train)
k_test, k_image_test = recommended_test_resolution(k_train, sigma)
fig = plot_histogram(proportions, "crop side / longer image side", "σ")
pd.Series({f"σ sampled, the recipe's crop U{tuple(crop)}": f"{sigma:.4f}", "σ standard error": f"{sigma_se:.4f}",
           "σ exact from the image shapes, the recipe's crop": f"{sigma_exact:.4f}",
           f"σ exact, the seed's crop U{P_RANGE}": f"{sigma_seed_study_crop:.4f}",
           "σ (the seed)": f"{seed_study.SIGMA.value}",
           "r at k_train = 64": f"{r:.4f}", "r (the seed)": f"{seed_study.R.value}",
           "k_test at k_train = 64": f"{k_test} px", "k_image_test at k_train = 64": f"{k_image_test} px"}).to_frame("value")

# %% [markdown]
# ## Explore: crop proportion and apparent object size
# In JupyterLab the sliders redraw; the report shows a static sweep of the same picture, for the smallest,
# middle and largest crop, with the test view at the recommended resolution, on the example image with the
# least blank background.

# %%
shown = int(examples[np.argmin([(cache.images[i] > 240).mean() for i in examples])])
show_explorer(crop_explorer, cache, k_train, index=shown, k_test=k_test)
for p in (0.2, 0.45, 0.7):
    show_jpeg(draw_crop(cache, shown, p, k_train, k_test))

# %% [markdown]
# ## What this shows

# %%
study.conclude("data", {
    "images": len(cache), "classes": cache.classes, "skipped": len(cache.skipped),
    "splits": sizes, "duplicates": dup_counts, "sigma": sigma, "sigma_se": sigma_se, "sigma_exact": sigma_exact,
    "sigma_seed_study_crop": sigma_seed_study_crop, "crop": list(crop),
}, [
    f"{len(cache):,} images in {len(cache.classes)} classes ({', '.join(cache.classes)}) were decoded and "
    f"{len(cache.skipped):,} skipped; the splits hold {', '.join(f'{n:,} `{k}`' for k, n in sizes.items())} images.",
    f"{dup_counts['exact groups']} sets of identical files and {dup_counts['near groups']} groups of near copies "
    f"(pHash within {dups.threshold} bits) hold {dup_counts['images in a group']} images "
    f"({dup_counts['groups with two labels']} groups under both classes); a split that ignored them would spread "
    f"{before} of these groups over two splits, the study's splits spread {after}.",
    f"The seed's crop U{P_RANGE} keeps on average σ = {sigma_seed_study_crop:.4f} of the image's longer side on these "
    f"images, computed exactly from their shapes (the seed measured {seed_study.SIGMA.value}).",
    f"The study's recipe ends training on crops U{tuple(crop)}: σ = {sigma:.4f} ± {1.96 * sigma_se:.4f} (95 %, "
    f"sampled; exactly {sigma_exact:.4f}), the σ the later notebooks use.",
    f"So r = σ · k_image_test / k_train = {r:.3f} at 64 px: objects look {1 / r:.2f}× larger in training than at "
    f"test, and testing at {k_test} px (image resized to {k_image_test} px) would match them.",
])
