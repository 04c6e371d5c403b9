"""Seaborn figures and result tables used by the notebooks."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .transforms import denormalize

sns.set_theme(style="whitegrid", context="notebook")


def results_frame(results: Sequence[dict]) -> pd.DataFrame:
    """One row per experiment result: size, cost and held-out accuracy."""
    rows = []
    for r in results:
        ev = r.get("eval", {})
        rows.append({"experiment": r["name"], "k_train": r["k_train"], "params": r["params"],
                     "MFLOPs (2/MAC)": r["flops"] / 1e6, "epochs": len(r["history"]),
                     "train images": r["n_train"], "train min": r["train_seconds"] / 60,
                     "img/s": np.mean([h["img_per_s"] for h in r["history"]]) if r["history"] else np.nan,
                     "test loss": ev.get("loss", np.nan), "test acc %": 100 * ev.get("accuracy", np.nan)})
    return pd.DataFrame(rows).round({"MFLOPs (2/MAC)": 2, "train min": 1, "img/s": 0, "test loss": 4, "test acc %": 2})


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6,
                normalized: bool = True) -> plt.Figure:
    """A grid of images [N,3,H,W] (normalised by default) with optional titles."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    images = denormalize(images) if normalized else images.float() / 255
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(img.clamp(0, 1).permute(1, 2, 0).cpu().numpy())
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(results: Sequence[dict], metric: str = "val_acc") -> plt.Figure:
    """Per-epoch curves of several experiments (train loss, and ``metric`` when recorded)."""
    rows = [{"experiment": r["name"], **h} for r in results for h in r["history"]]
    df = pd.DataFrame(rows)
    metrics = ["train_loss"] + ([metric] if metric in df else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        sns.lineplot(df, x="epoch", y=m, hue="experiment", marker="o", ax=ax)
        ax.set_title(m.replace("_", " "))
    fig.tight_layout()
    return fig


def plot_accuracy_vs_flops(df: pd.DataFrame, label: str = "experiment", reference: pd.DataFrame | None = None) -> plt.Figure:
    """EfficientNet's headline plot on this problem: held-out accuracy against FLOPs (log scale)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(df, x="MFLOPs (2/MAC)", y="test acc %", marker="o", ax=ax, label="this run")
    for _, row in df.iterrows():
        ax.annotate(str(row[label]), (row["MFLOPs (2/MAC)"], row["test acc %"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    if reference is not None:
        sns.scatterplot(reference, x="MFLOPs (2/MAC)", y="test acc %", marker="X", s=80, ax=ax, label="seed")
    ax.set_xscale("log")
    ax.set_xlabel("forward MFLOPs per image (multiply-add = 2)")
    fig.tight_layout()
    return fig


def plot_resolution_sweep(curves: dict[str, Sequence[dict]], k_train: int, k_recommended: int) -> plt.Figure:
    """Test accuracy against test resolution for each model, with the training and FixRes resolutions marked."""
    df = pd.DataFrame([{"model": name, "k_test": r["k_test"], "accuracy %": 100 * r["accuracy"],
                        "loss": r["loss"]} for name, rows in curves.items() for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, y in zip(axes, ["accuracy %", "loss"]):
        sns.lineplot(df, x="k_test", y=y, hue="model", marker="o", ax=ax)
        ax.axvline(k_train, ls="--", c="grey")
        ax.axvline(k_recommended, ls=":", c="crimson")
        ax.set_title(f"{y} (dashed: train {k_train}px, dotted: FixRes {k_recommended}px)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_histogram(values: np.ndarray, xlabel: str, mean_label: str = "mean", bins: int = 40) -> plt.Figure:
    """A histogram with its mean marked."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(values, bins=bins, ax=ax)
    ax.axvline(float(np.mean(values)), c="crimson", label=f"{mean_label} = {np.mean(values):.3f}")
    ax.set_xlabel(xlabel)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_sizes(hw: np.ndarray, original_sizes: bool = False) -> plt.Figure:
    """Distribution of image sizes and aspect ratios (w / h)."""
    df = pd.DataFrame({"height": hw[:, 0], "width": hw[:, 1], "aspect w/h": hw[:, 1] / hw[:, 0]})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    sns.histplot(df, x="width", y="height", ax=axes[0], bins=30, cbar=True)
    sns.histplot(df, x="aspect w/h", ax=axes[1], bins=40)
    axes[0].set_title("cached image size (longer side = cache side)")
    fig.tight_layout()
    return fig
