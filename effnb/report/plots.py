"""Seaborn figures and result tables used by the notebooks: accuracies in %, readable axis labels, legends
beside the axes, integer epochs."""
from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Image, display
from matplotlib.colors import ListedColormap
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from effnb.data.transforms import denormalize
from effnb.study.compute import ComputePoint, frontier
from effnb.study.stats import accuracy_interval

sns.set_theme(style="whitegrid", context="notebook")
pd.set_option("display.max_colwidth", None)  # table labels are sentences: never cut them
plt.rcParams["axes.formatter.useoffset"] = False  # plain tick labels, never "1e-6+6.93e-1"
LEGEND_BESIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1), "frameon": False}


def results_frame(results: Sequence[dict]) -> pd.DataFrame:
    """One row per experiment result: size, cost and held-out accuracy with its 95 % Wilson interval."""
    rows = []
    for r in results:
        ev = r.get("eval", {})
        rows.append({"experiment": r["name"], "k_train": r["k_train"], "params": r["params"],
                     "MFLOPs (2/MAC)": r["flops"] / 1e6, "epochs": len(r["history"]),
                     "train images": r["n_train"], "train min": r["train_seconds"] / 60,
                     "img/s": np.mean([h["img_per_s"] for h in r["history"]]) if r["history"] else np.nan,
                     "k_test": ev.get("k_test", r["k_train"]), "test loss": ev.get("loss", np.nan),
                     "test acc %": 100 * ev.get("accuracy", np.nan),
                     "95 % interval": "{:.1f}–{:.1f} %".format(*(100 * v for v in accuracy_interval(ev["accuracy"], ev["n"])))
                     if "n" in ev else "–"})
    df = pd.DataFrame(rows).set_index("experiment")
    return df.round({"MFLOPs (2/MAC)": 2, "train min": 1, "img/s": 0, "test loss": 4, "test acc %": 2})


def show_jpeg(fig: plt.Figure, quality: int = 85) -> None:
    """Display a figure of photographs as a JPEG (a fraction of the PNG's weight in notebooks and reports); close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", bbox_inches="tight", pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="jpeg"))


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6,
                normalized: bool = True, title: str | None = None) -> None:
    """Display a grid of images [N,3,H,W] (normalised by default) with optional titles (wrapped to the image's
    width, with room left above each image), as a JPEG."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    titles = None if titles is None else [textwrap.fill(t, max(10, round(9 * size))) for t in titles]
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles else 0
    # room above each image for its wrapped title, so captions never run into the images or each other
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size * 1.08, nrows * (size + 0.16 * lines + 0.1)),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    images = denormalize(images) if normalized else images.float() / 255
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(img.clamp(0, 1).permute(1, 2, 0).cpu().numpy())
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    show_jpeg(fig)


def _interval_band(ax: plt.Axes, x: Sequence[float], accuracies: Sequence[float], n: int | Sequence[int],
                   color) -> None:
    """Shade the 95 % Wilson interval (in %) of accuracies measured on ``n`` images each."""
    ns = [n] * len(accuracies) if isinstance(n, int) else list(n)
    low, high = zip(*(accuracy_interval(a, k) for a, k in zip(accuracies, ns)))
    ax.fill_between(x, [100 * v for v in low], [100 * v for v in high], color=color, alpha=.2, lw=0)


def plot_learning_curves(results: Sequence[dict]) -> plt.Figure:
    """Per-epoch training loss and, when recorded, held-out accuracy (%) with its 95 % interval (shaded, on the
    result's ``n_eval`` images) of several experiments."""
    df = pd.DataFrame([{"experiment": r["name"], **h} for r in results for h in r["history"]])
    panels = [("train_loss", "training loss", 1)] + ([("val_acc", "held-out accuracy (%)", 100)] if "val_acc" in df else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + 2.5, 3.4), squeeze=False)
    colours = dict(zip([r["name"] for r in results], sns.color_palette(n_colors=len(results))))
    for ax, (column, label, factor) in zip(axes.flat, panels):
        sns.lineplot(df.assign(y=df[column] * factor), x="epoch", y="y", hue="experiment", marker="o", ax=ax,
                     legend=ax is axes.flat[-1], palette=colours, errorbar=None)
        if column == "val_acc":
            for r in results:
                epochs = [h for h in r["history"] if h.get("val_acc") is not None]
                _interval_band(ax, [h["epoch"] for h in epochs], [h["val_acc"] for h in epochs], r["n_eval"],
                               colours[r["name"]])
        ax.set(xlabel="epoch", ylabel=label, xlim=(0.5, df["epoch"].max() + 0.5))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    sns.move_legend(axes.flat[-1], **LEGEND_BESIDE)
    fig.tight_layout()
    return fig


def plot_selection(table: pd.DataFrame) -> plt.Figure:
    """A selection's runs (:meth:`effnb.study.selection.Selection.table`): accuracy (%) with its 95 % interval against
    parameters and against forward FLOPs, one colour per rung budget, the candidates stopped there hollow; each
    candidate named once, at its last run, labels alternating above and below so that neighbours do not overlap."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    rungs = sorted(table["eq. epochs"].unique())
    colours = dict(zip(rungs, sns.color_palette("viridis", len(rungs))))
    last = table.drop_duplicates("candidate", keep="last").sort_values("MFLOPs (2/MAC)")
    for ax, x in zip(axes, ["params", "MFLOPs (2/MAC)"]):
        for epochs, rows in table.groupby("eq. epochs"):
            for stopped, part in rows.groupby(rows["next"] == "stopped"):
                ax.errorbar(part[x], part["acc %"], yerr=[part["acc %"] - part["low %"], part["high %"] - part["acc %"]],
                            fmt="o", capsize=3, color=colours[epochs], mfc="white" if stopped else colours[epochs],
                            label=f"{epochs:g} eq. epochs" + (", stopped there" if stopped else ""))
        for i, (_, row) in enumerate(last.sort_values(x).iterrows()):
            above = i % 2 == 0
            ax.annotate(str(row["candidate"]), (row[x], row["high %"] if above else row["low %"]), ha="center",
                        textcoords="offset points", xytext=(0, 4 if above else -11), fontsize=8)
        ax.set(xlabel="parameters" if x == "params" else "forward MFLOPs per image (multiply-add = 2)")
    axes[0].set_ylabel("held-out accuracy (%), 95 % interval")
    axes[-1].legend(title="budget (hollow: stopped by rank)", **LEGEND_BESIDE)
    fig.tight_layout()
    return fig


def plot_resolution_sweep(curves: dict[str, Sequence[dict]], k_train: int, k_recommended: int) -> plt.Figure:
    """Accuracy (%) with its 95 % interval (shaded) and loss against the test resolution k_test for each model, all
    measured on the same images (refused otherwise: curves on different images are not compared); training and
    FixRes resolutions marked."""
    sizes = {name: {r["n"] for r in rows} for name, rows in curves.items()}
    if len(set().union(*sizes.values())) > 1:
        raise ValueError(f"the curves are measured on different numbers of images: {sizes}")
    df = pd.DataFrame([{"model": name, "k_test": r["k_test"], "accuracy": 100 * r["accuracy"], "loss": r["loss"]}
                       for name, rows in curves.items() for r in rows])
    colours = dict(zip(curves, sns.color_palette(n_colors=len(curves))))
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    for ax, (column, label) in zip(axes, [("accuracy", "held-out accuracy (%), 95 % interval"),
                                          ("loss", "held-out loss")]):
        sns.lineplot(df, x="k_test", y=column, hue="model", marker="o", ax=ax, legend=ax is axes[-1], palette=colours, errorbar=None)
        if column == "accuracy":
            for name, rows in curves.items():
                _interval_band(ax, [r["k_test"] for r in rows], [r["accuracy"] for r in rows], [r["n"] for r in rows],
                               colours[name])
        ax.axvline(k_train, ls="--", c="grey", label=f"training resolution ({k_train} px)")
        ax.axvline(k_recommended, ls=":", c="crimson", label=f"FixRes resolution ({k_recommended} px)")
        ax.set(xlabel="test resolution k_test (px)", ylabel=label)
    n = next(iter(set().union(*sizes.values())), 0)
    axes[-1].legend(title=f"on the same {n:,} images", **LEGEND_BESIDE)
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


def size_summary(hw: np.ndarray) -> str:
    """One sentence on the images' sizes in the cache (the longer side is the cache side)."""
    sizes = pd.Series([f"{h}×{w}" for h, w in np.asarray(hw)]).value_counts()
    if len(sizes) == 1:
        return f"All {len(hw):,} cached images are {sizes.index[0]} pixels (height × width), so no size plot is needed."
    aspect = np.asarray(hw)[:, 1] / np.asarray(hw)[:, 0]
    return (f"The {len(hw):,} cached images come in {len(sizes):,} sizes; the most common is {sizes.index[0]} "
            f"({sizes.iloc[0]:,} images); width/height ranges from {aspect.min():.2f} to {aspect.max():.2f}.")


def plot_sizes(hw: np.ndarray) -> plt.Figure | None:
    """Distribution of cached image sizes and aspect ratios (w / h); None when every image has the same size."""
    df = pd.DataFrame({"height (px)": hw[:, 0], "width (px)": hw[:, 1], "aspect ratio w/h": hw[:, 1] / hw[:, 0]})
    if len(df.drop_duplicates(["height (px)", "width (px)"])) == 1:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    sns.histplot(df, x="width (px)", y="height (px)", ax=axes[0], bins=30, cbar=True)
    sns.histplot(df, x="aspect ratio w/h", ax=axes[1], bins=40)
    axes[0].set_title("cached image size (longer side = cache side)")
    fig.tight_layout()
    return fig


def plot_prediction_grid(correct: pd.DataFrame) -> plt.Figure:
    """Every model (rows) against every image (columns), mistakes in black (seed 001's predictions grid): the
    images in split order, then sorted by how many models get them wrong (hardest first)."""
    by_difficulty = correct.loc[:, (~correct).sum(axis=0).sort_values(ascending=False, kind="stable").index]
    cmap = ListedColormap(["black", "white"])
    fig, axes = plt.subplots(2, 1, figsize=(12, 1.2 + 0.55 * len(correct)), squeeze=False)
    for ax, grid, title in [(axes[0, 0], correct, "images in split order"),
                            (axes[1, 0], by_difficulty, "images sorted by how many models get them wrong")]:
        ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="antialiased")
        ax.set_yticks(range(len(grid)), [textwrap.fill(str(m), 40) for m in grid.index], fontsize=8)
        ax.set_xlabel(f"{grid.shape[1]} images")
        ax.set_xticks([])
        ax.grid(False)
        ax.set_title(f"{title} (black: mistake)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_hardest_images(images: torch.Tensor, hardest: pd.DataFrame, models: Sequence[str]) -> plt.Figure:
    """The hardest images (normalised, as the models see them) over a heatmap of each model's probability of
    their true class; ``hardest`` has a ``true class`` column and one column per model."""
    n = len(images)
    fig = plt.figure(figsize=(max(8.0, 1.1 * n + 3), 1.6 + 0.32 * len(models) + 1.2))
    grid = fig.add_gridspec(2, n, height_ratios=[1.25, 0.32 * len(models)], hspace=0.1, wspace=0.05)
    for i, (img, true) in enumerate(zip(denormalize(images), hardest["true class"])):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(img.permute(1, 2, 0).cpu().numpy())
        ax.set_title(f"true: {true}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    probs = hardest[list(models)].T
    sns.heatmap(probs, vmin=0, vmax=1, cmap="RdYlGn", annot=True, fmt=".2f", cbar=False, ax=ax, annot_kws={"size": 7})
    ax.set_yticklabels([textwrap.fill(str(m), 40) for m in models], rotation=0, fontsize=8)
    ax.set_xticks([])
    ax.set_xlabel("probability of the true class (below 0.5: wrong)")
    return fig


GROUP_NAMES = {"baseline": "baselines", "grid": "grid candidates", "phi": "φ at equal minutes",
               "final": "final model and FixRes steps"}


def plot_accuracy_vs_compute(points: Sequence[ComputePoint], named: bool = False) -> plt.Figure:
    """Accuracy with its 95 % interval against training CPU-minutes and training FLOPs (log scales), one point per
    trained model; each split's frontier drawn, the chosen model starred; with ``named``, each point labelled (for a
    few points: labels alternate above and below so neighbours do not overlap)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    styles = {"baseline": ("o", "tab:blue"), "grid": ("s", "tab:orange"), "phi": ("^", "tab:purple"),
              "final": ("D", "tab:green")}
    for ax, attr, xlabel in zip(axes, ("cpu_minutes", "train_flops"), ("training CPU-minutes (this machine)",
                                                                       "training FLOPs (3 x forward x images seen)")):
        for group, (marker, color) in styles.items():
            pts = [p for p in points if p.group == group]
            if not pts:
                continue
            x, y = [getattr(p, attr) for p in pts], [100 * p.accuracy for p in pts]
            err = [[100 * (p.accuracy - p.low) for p in pts], [100 * (p.high - p.accuracy) for p in pts]]
            ax.errorbar(x, y, yerr=err, fmt=marker, color=color, alpha=.8, capsize=2,
                        label=f"{GROUP_NAMES[group]} ({pts[0].split})")
        for split in ("test", "test2"):
            edge = sorted(frontier([p for p in points if p.split == split]), key=lambda p: getattr(p, attr))
            if attr == "cpu_minutes" and len(edge) > 1:
                ax.step([p.cpu_minutes for p in edge], [100 * p.accuracy for p in edge], where="post",
                        color="grey", lw=1, ls="--")
        starred = "final" if any(p.group == "final" for p in points) else None
        for p in points:
            if p.chosen and p.group in (starred, "phi"):
                ax.plot(getattr(p, attr), 100 * p.accuracy, "*", ms=16, color="gold", mec="black", zorder=5,
                        label="chosen model" if p.group == "final" else "chosen by the rule")
        if named:
            for i, p in enumerate(sorted(points, key=lambda p: getattr(p, attr))):
                ax.annotate(p.model, (getattr(p, attr), 100 * p.high if i % 2 else 100 * p.low),
                            textcoords="offset points", xytext=(0, 4 if i % 2 else -11), ha="center", fontsize=8)
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:.3g}" if v < 1e4 else f"{v:.2g}")  # 21, 3.2e+11: never 2.1×10¹
        ax.xaxis.set_major_formatter(plain)
        values = [getattr(p, attr) for p in points]
        # minor ticks are labelled only within one decade, where there are no major ones to read (else they overlap)
        ax.xaxis.set_minor_formatter(plain if max(values) < 10 * min(values) else NullFormatter())
        if attr == "train_flops":
            ax.tick_params(axis="x", which="both", labelrotation=35, labelsize=8)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("accuracy % (95 % Wilson interval)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels), frameon=False)
    axes[0].set_title("dashed: the best accuracy each budget buys", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the panels, off the points
    return fig
