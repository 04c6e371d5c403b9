"""Which images which models get wrong: the predictions analysis of notebook 06.

The idea is seed 001's §6.3 ("Predictions analysis"): a grid of every model against every held-out
image with the mistakes in black, where images that many models get wrong show up as dark lines.
Here every model predicts the split once (:func:`predict_models`); the same predictions give the
final table's loss and accuracy, the grid, the hardest images and a short description written from
the numbers (:func:`describe_hardest`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import math

import numpy as np
import pandas as pd
import torch

from effnb import seed_study

from effnb.data.cache import ImageCache
from effnb.data.transforms import TestSize
from effnb.train.checkpoint import load_checkpoint
from effnb.train.feed import Feed
from effnb.study.stats import accuracy_interval
from effnb.train.inference import predict, score
from effnb.train.recipes import Recipe


@dataclass
class SplitPredictions:
    """Every model's class probabilities on the same images, and each model's loss and accuracy on them."""

    indices: np.ndarray  # cache indices of the images, in order
    labels: np.ndarray  # their true labels
    classes: list[str]
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # model label -> [images, classes]
    rows: list[dict] = field(default_factory=list)  # one metrics row per model, in order

    def __or__(self, other: SplitPredictions) -> SplitPredictions:
        """Both sets of models (on the same images)."""
        if not np.array_equal(self.indices, other.indices):
            raise ValueError("predictions on different images cannot be combined")
        return SplitPredictions(self.indices, self.labels, self.classes, {**self.probs, **other.probs},
                                self.rows + other.rows)

    def renamed(self, names: Mapping[str, str]) -> SplitPredictions:
        """The same predictions with models renamed by ``names`` (others keep their name)."""
        return SplitPredictions(self.indices, self.labels, self.classes,
                                {names.get(m, m): p for m, p in self.probs.items()}, self.rows)

    @property
    def models(self) -> list[str]:
        return list(self.probs)

    def correct(self) -> pd.DataFrame:
        """Models x images: whether each model's predicted class is the true one."""
        return pd.DataFrame({m: p.argmax(1) == self.labels for m, p in self.probs.items()}).T

    def true_class_probability(self) -> pd.DataFrame:
        """Models x images: the probability each model gives the true class."""
        rows = np.arange(len(self.labels))
        return pd.DataFrame({m: p[rows, self.labels] for m, p in self.probs.items()}).T

    def difficulty(self) -> pd.DataFrame:
        """One row per image, hardest first: how many models get it wrong, then the mean probability of the
        true class (lower is harder)."""
        wrong = (~self.correct()).sum(axis=0)
        df = pd.DataFrame({"index": self.indices, "true class": np.asarray(self.classes)[self.labels],
                           "models wrong": wrong.to_numpy(),
                           "mean p(true class)": self.true_class_probability().mean(axis=0).to_numpy()})
        return df.sort_values(["models wrong", "mean p(true class)"], ascending=[False, True], kind="stable")

    def hardest(self, n: int = 12) -> pd.DataFrame:
        """The ``n`` hardest images with their true class and each model's probability of it."""
        top = self.difficulty().head(n)
        per_model = self.true_class_probability().T.loc[top.index]
        return pd.concat([top, per_model], axis=1)

    def summary(self) -> dict:
        """Counts the notebook prints: images every model gets wrong, at least one gets wrong, errors per model."""
        wrong = ~self.correct()
        return {"models": self.models, "images": len(self.labels), "all_wrong": int(wrong.all(axis=0).sum()),
                "any_wrong": int(wrong.any(axis=0).sum()), "errors": {m: int(v) for m, v in wrong.sum(axis=1).items()}}


def predict_models(models: Mapping[str, tuple[str, dict | None]], cache: ImageCache, indices: np.ndarray,
                   device: torch.device | str = "cpu", batch_size: int = 100, tta: bool = False) -> SplitPredictions:
    """Predict ``indices`` once with each model ``{id: (checkpoint, preprocessing)}``, with the evaluation preprocessing
    (``tta``: averaging each image's logits with its mirror's).

    ``preprocessing`` holds ``k_test`` and ``k_image_test`` (None: derived by :meth:`TestSize.at`), or is None for
    the checkpoint's own. Each row holds the id, checkpoint, k_test, k_image_test, loss, accuracy and the number
    of images.
    """
    indices = np.asarray(indices)
    out = SplitPredictions(indices, np.asarray(cache.labels)[indices], list(cache.classes))
    for model_id, (checkpoint, pre) in models.items():
        model, meta = load_checkpoint(checkpoint)
        pre = pre or meta["preprocessing"]
        k_test, k_image_test = TestSize.at(pre["k_test"], pre.get("k_image_test"))
        feed = Feed(cache, indices, k_test, "eval", k_image_test=k_image_test, batch_size=batch_size)
        logits, labels = predict(model, feed, device, tta=tta)
        out.probs[model_id] = logits.softmax(1).numpy()
        out.rows.append({"id": model_id, "checkpoint": checkpoint, "k_test": k_test, "k_image_test": k_image_test,
                         **score(logits, labels)})
    return out


def image_statistics(cache: ImageCache, indices: np.ndarray) -> pd.DataFrame:
    """Simple statistics of each image: mean brightness (luma, 0..255), colourfulness (mean max - min over the
    channels, 0..255), contrast (std of the luma, 0..255) and green share (% of pixels whose green channel is
    the largest: grass and leaves)."""
    rows = []
    for i in np.asarray(indices):
        h, w = cache.hw[i]
        rgb = cache.images[i, :, :h, :w].astype(np.float32)
        luma = np.tensordot([0.299, 0.587, 0.114], rgb, axes=1)
        rows.append({"brightness": luma.mean(), "colourfulness": (rgb.max(0) - rgb.min(0)).mean(),
                     "contrast": luma.std(), "green share": 100 * ((rgb[1] > rgb[0]) & (rgb[1] > rgb[2])).mean()})
    return pd.DataFrame(rows, index=np.asarray(indices))


# how a difference in each statistic is said: (lower, higher, format of the values)
_FEATURE_WORDS = {"brightness": ("darker", "brighter", "mean brightness {:.0f} against {:.0f} of 255"),
                  "colourfulness": ("less colourful", "more colourful", "colourfulness {:.0f} against {:.0f} of 255"),
                  "contrast": ("lower in contrast", "higher in contrast", "contrast {:.0f} against {:.0f} of 255"),
                  "green share": ("less green", "greener", "{:.0f} % against {:.0f} % green pixels")}


def describe_hardest(preds: SplitPredictions, stats: pd.DataFrame, split: str = "test2",
                     min_effect: float = 0.3) -> str:
    """A short paragraph, written from the numbers, on what the hardest images have in common.

    The hardest images are those every model gets wrong, or (when fewer than 5) those most models get
    wrong. ``stats`` is :func:`image_statistics` of the same images; a statistic is mentioned when the hard
    images' mean differs from the others' by at least ``min_effect`` standard deviations.
    """
    s = preds.summary()
    n, m = s["images"], len(s["models"])
    wrong = (~preds.correct()).to_numpy()
    counts = wrong.sum(0)
    hard = counts == m
    which = "every model gets"
    if hard.sum() < 5:
        hard, which = counts > m / 2, "most models get"
    errors = s["errors"]
    easiest, worst = min(errors, key=errors.get), max(errors, key=errors.get)
    shared = (counts * (counts - 1)).sum() / max(counts.sum(), 1)  # other models wrong on the same image, per mistake
    independent = (wrong.sum() * (m - 1) / m) / n  # the same if mistakes fell independently of the image
    text = [f"Across the {m} models, {s['all_wrong']} of the {n} {split} images ({100 * s['all_wrong'] / n:.1f} %) "
            f"are misclassified by every model and {s['any_wrong']} ({100 * s['any_wrong'] / n:.1f} %) by at least one; "
            f"a model's own errors range from {errors[easiest]} ({easiest}) to {errors[worst]} ({worst}). "
            f"Mistakes are shared: on average {shared:.1f} of the other {m - 1} models also get an image wrong that "
            f"one model gets wrong (about {independent:.1f} if mistakes fell on images at random), which is what "
            f"the dark columns of the grid show."]
    if not hard.any():
        text.append("No image is misclassified by most models, so the hardest images have nothing clear in common.")
        return " ".join(text)
    k = int(hard.sum())
    true = np.asarray(preds.classes)[preds.labels[hard]]
    names, per_class = np.unique(true, return_counts=True)
    top = names[per_class.argmax()]
    overall = 100 * np.mean(np.asarray(preds.classes)[preds.labels] == top)
    p_true = preds.true_class_probability().to_numpy()[:, hard].mean()
    tone = "confidently wrong" if p_true < 0.3 else "wrong but unsure" if p_true > 0.4 else "fairly confidently wrong"
    text.append(f"Of the {k} images {which} wrong, {per_class.max()} are {top} ({100 * per_class.max() / k:.0f} %, "
                f"against {overall:.0f} % among all {n}), and the models are {tone} about them: the mean probability "
                f"they give the true class is {p_true:.2f}.")
    values = stats.to_numpy()
    effect = (values[hard].mean(0) - values[~hard].mean(0)) / (values.std(0) + 1e-9)
    found = [f"{_FEATURE_WORDS[c][int(e > 0)]} ({_FEATURE_WORDS[c][2].format(values[hard, j].mean(), values[~hard, j].mean())})"
             for j, (c, e) in enumerate(zip(stats.columns, effect)) if abs(e) >= min_effect]
    if found:
        text.append(f"Compared with the other images they are {', '.join(found)}.")
    else:
        text.append(f"Their {', '.join(stats.columns)} are within {min_effect} standard deviations of the other "
                    f"images', so what they share is not in these simple statistics: the images themselves (above) "
                    f"show it.")
    return " ".join(text)


def _with_interval(row: dict) -> str:
    low, high = accuracy_interval(row["accuracy"], row["n"])
    return f"{100 * row['accuracy']:.2f} % [{100 * low:.1f}, {100 * high:.1f}]"


def beside_the_seed(trained: dict, chosen: dict, full: dict, recipe: Recipe, phi: int, train_minutes: float,
                    machine: str) -> tuple[pd.DataFrame, list[str]]:
    """Seed 000's final table beside this run's: its row without fine-tuning beside the model as trained, its row
    with fine-tuning beside the model the study *chose* (``chosen``, a final row with ``label``, ``accuracy``,
    ``n``, ``loss``, ``extra_seconds``); and what differs between the two, one sentence each (``full``: the
    whole-network fine-tune, the step closest to the seed's)."""
    seed_rows = (seed_study.FINAL["without fine-tuning"], seed_study.FINAL["with fine-tuning"])
    table = pd.DataFrame([{"seed 000's row": s.name, "seed 000: accuracy": f"{100 * s.accuracy:.2f} %",
                           "seed 000: loss": f"{s.loss:.4f}", "this run's model": r["label"],
                           "accuracy [95 % CI]": _with_interval(r), "loss": f"{r['loss']:.4f}"}
                          for s, r in zip(seed_rows, (trained, chosen))]).set_index("seed 000's row")
    smoothing = recipe.train.label_smoothing
    floor = -math.log(1 - smoothing / 2) if smoothing else 0.0  # two classes: the smoothed target of the true class
    differs = [
        f"**Compute.** Seed 000 scales to φ = {seed_study.FINAL_PHI.value} and trains on a GPU; it states neither its "
        f"epochs nor its hardware (its author's published code trains 150 epochs and fine-tunes 40). This run: "
        f"φ = {phi}, {train_minutes:.1f} CPU-minutes of training on {machine}, the `{recipe.name}` recipe.",
        (f"**Loss.** This run trains with label smoothing {smoothing:g}, so its model is never fully confident: the "
         f"plain cross-entropy reported here cannot fall below {floor:.3f} even on images it gets right, while the "
         f"seed's author's published code trains on plain cross-entropy. The losses are not comparable; the "
         f"accuracies are." if smoothing else
         "**Loss.** Both are trained on plain cross-entropy (no label smoothing), so their losses can be compared."),
        f"**The fine-tuned row.** Seed 000's “with fine tuning” row fine-tunes the whole network at the larger "
        f"resolution. Beside it stands the model this study chose by its declared rule, “{chosen['label']}” "
        f"({(chosen.get('extra_seconds') or 0):.0f} s of CPU after training); the whole-network fine-tune, the step "
        f"closest to seed 000's, reaches {_with_interval(full)} (the table above).",
        f"**Data.** Seed 000 scores a second random split of {seed_study.TEST_IMAGES.value:,} images; this run, its "
        f"`test2` of {chosen['n']:,}, read only by notebook 06 after every choice was fixed (every read of it is listed "
        f"below).",
        f"**How far to trust {100 * seed_rows[1].accuracy:.2f} %.** Its author's published code validates every epoch "
        f"on the test set it reports, and shuffles before splitting with take/skip, which in TensorFlow can reshuffle "
        f"each epoch and mix training and test images; seed 000 says neither. So the seed's figure may be "
        f"optimistic, and the gap to it is not all a gap in the method.",
    ]
    return table, differs
