"""ipywidgets explorers for JupyterLab. Each has a ``draw_*`` function that the reports call for a static view."""
from __future__ import annotations

import os
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from .data import ImageCache

BATCH_ENV = "EFFNB_BATCH"  # set by the study runner: no live frontend to drive widgets


def show_explorer(make: Callable[..., widgets.Widget], *args, **kwargs) -> None:
    """Build and display an explorer in JupyterLab; in a batch run (papermill) only say where to find it.

    Widgets are not even built in batch runs: a widget that draws on creation can stall the
    notebook client that papermill uses.
    """
    if os.environ.get(BATCH_ENV):
        print(f"(interactive {make.__name__}: open this notebook in JupyterLab to use it; a static view is shown here)")
    else:
        display(make(*args, **kwargs))
from .fixres import apparent_object_scale
from .flops import scaling_table
from .model import NetSpec
from .transforms import crop_resize, eval_boxes, image_test_size


def draw_crop(cache: ImageCache, index: int, proportion: float, k_train: int = 64, k_test: int = 64) -> plt.Figure:
    """A centred training crop of side ``proportion`` x longer side next to the test-time view, with the size ratio."""
    h, w = (int(v) for v in cache.hw[index])
    side = min(proportion * max(h, w), min(h, w))
    x0, y0 = (w - side) / 2, (h - side) / 2
    images = torch.from_numpy(cache.images[index:index + 1].copy())
    hw = torch.tensor([[h, w]])
    train_view = crop_resize(images, torch.tensor([[x0, y0, x0 + side, y0 + side]]), k_train)[0]
    test_view = crop_resize(images, eval_boxes(hw, k_test), k_test)[0]
    used = side / max(h, w)
    scale = apparent_object_scale(used, k_train, image_test_size(k_test))
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    axes[0].imshow(images[0, :, :h, :w].permute(1, 2, 0).numpy())
    axes[0].add_patch(plt.Rectangle((x0, y0), side, side, fill=False, ec="crimson", lw=2))
    axes[0].set_title(f"crop: {used:.2f} of the longer side")
    for ax, view, title in [(axes[1], train_view, f"train view {k_train}px"), (axes[2], test_view, f"test view {k_test}px")]:
        ax.imshow(view.clamp(0, 255).byte().permute(1, 2, 0).numpy())
        ax.set_title(title)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"objects look {scale:.2f}x larger in training than at test ({k_test}px)")
    fig.tight_layout()
    return fig


def crop_explorer(cache: ImageCache, k_train: int = 64) -> widgets.Widget:
    """Sliders for the image, the crop proportion and the test resolution: see the apparent object size change."""
    def show(index: int, proportion: float, k_test: int) -> None:
        draw_crop(cache, index, proportion, k_train, k_test)
        plt.show()
    return widgets.interactive(show, index=widgets.IntSlider(0, 0, len(cache) - 1),
                               proportion=widgets.FloatSlider(0.45, min=0.2, max=0.7, step=0.05),
                               k_test=widgets.IntSlider(k_train, k_train // 2, 4 * k_train, step=8))


def scaling_frame(spec: NetSpec, alpha: float, beta: float, gamma: float, phi: int) -> pd.DataFrame:
    """The scaled network's size and cost for phi = 0 .. ``phi``."""
    df = pd.DataFrame(scaling_table(spec, alpha, beta, gamma, range(phi + 1)))
    df["MFLOPs (2/MAC)"] = df.pop("flops") / 1e6
    return df.round(3)


def scaling_explorer(spec: NetSpec) -> widgets.Widget:
    """Sliders for alpha, beta, gamma, phi: the scaled network's layers, channels, params, FLOPs and resolution."""
    def show(alpha: float, beta: float, gamma: float, phi: int) -> None:
        print(f"alpha*beta^2*gamma^2 = {alpha * beta ** 2 * gamma ** 2:.3f} (target 2)")
        display(scaling_frame(spec, alpha, beta, gamma, phi))
    slider = lambda v: widgets.FloatSlider(v, min=1.0, max=1.6, step=0.01)  # noqa: E731
    return widgets.interactive(show, alpha=slider(1.2), beta=slider(1.05), gamma=slider(1.23),
                               phi=widgets.IntSlider(4, 0, 6))


def prediction_browser(images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, classes: list[str],
                       draw) -> widgets.Widget:
    """Page through predictions (images normalised), optionally only the errors; ``draw`` is plots.show_images."""
    def show(page: int, errors_only: bool) -> None:
        keep = (probs.argmax(1) != labels) if errors_only else torch.ones(len(labels), dtype=torch.bool)
        idx = keep.nonzero().flatten()[page * 16:(page + 1) * 16]
        titles = [f"{classes[labels[i]]}→{classes[probs[i].argmax()]} {probs[i].max():.2f}" for i in idx]
        draw(images[idx], titles, ncols=8)
        plt.show()
    return widgets.interactive(show, page=widgets.IntSlider(0, 0, max(0, len(labels) // 16)),
                               errors_only=widgets.Checkbox(True))


