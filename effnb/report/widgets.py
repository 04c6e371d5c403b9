"""ipywidgets explorers for JupyterLab. Each has a ``draw_*`` function that the reports call for a static view."""
from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from effnb.data.cache import ImageCache
from effnb.data.fixres import apparent_object_scale
from effnb.data.transforms import P_RANGE, TestSize, crop_resize, eval_boxes
from effnb.nn.flops import scaling_table
from effnb.nn.model import NetSpec
from effnb.report.plots import show_images, show_jpeg
from effnb.train.recipes import RECIPES
from effnb.utils.progress import in_batch


def show_explorer(make: Callable[..., widgets.Widget], *args, **kwargs) -> None:
    """Build and display an explorer in JupyterLab; in a batch run (papermill) only say where to find it.

    Widgets are not even built in batch runs: a widget that draws on creation can stall the
    notebook client that papermill uses.
    """
    if in_batch():
        display(Markdown(f"*In JupyterLab this cell shows an interactive `{make.__name__}`; "
                         "the report shows a static view instead.*"))
    else:
        display(make(*args, **kwargs))


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
    scale = apparent_object_scale(used, k_train, TestSize.at(k_test).k_image_test)
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


def study_crop_range() -> tuple[float, float]:
    """The smallest and largest crop proportion any crop of the study draws: the seed's U(0.2, 0.7) and every
    recipe's, from its first epoch's range to its last."""
    ranges = [P_RANGE, *(r for recipe in RECIPES.values() for r in (recipe.train.p_range, recipe.train.p_range_start) if r)]
    return min(lo for lo, _ in ranges), max(hi for _, hi in ranges)


def crop_explorer(cache: ImageCache, k_train: int = 64, index: int = 0, k_test: int | None = None) -> widgets.Widget:
    """Sliders for the image, the crop proportion (over :func:`study_crop_range`, every crop the study uses) and the
    test resolution (in steps of 1 px): see the apparent object size change."""
    def show(index: int, proportion: float, k_test: int) -> None:
        show_jpeg(draw_crop(cache, index, proportion, k_train, k_test))
    low, high = study_crop_range()
    return widgets.interactive(show, index=widgets.IntSlider(index, 0, len(cache) - 1),
                               proportion=widgets.FloatSlider(round((low + high) / 2, 2), min=low, max=high, step=0.05),
                               k_test=widgets.IntSlider(k_test or k_train, k_train // 2, 4 * k_train, step=1))


def scaling_explorer(spec: NetSpec) -> widgets.Widget:
    """Sliders for alpha, beta, gamma, phi: the scaled network's layers, channels, params, FLOPs and resolution."""
    def show(alpha: float, beta: float, gamma: float, phi: int) -> None:
        print(f"alpha*beta^2*gamma^2 = {alpha * beta ** 2 * gamma ** 2:.3f} (target 2)")
        display(scaling_table(spec, alpha, beta, gamma, phi))
    slider = lambda v: widgets.FloatSlider(v, min=1.0, max=1.6, step=0.01)  # noqa: E731
    return widgets.interactive(show, alpha=slider(1.2), beta=slider(1.05), gamma=slider(1.23),
                               phi=widgets.IntSlider(4, 0, 6))


PAGE_SIZE = 16


def prediction_pages(wrong: torch.Tensor, errors_only: bool, page_size: int = PAGE_SIZE) -> list[torch.Tensor]:
    """The indices shown on each page: every prediction, or only the wrong ones; never an empty page."""
    shown = (wrong if errors_only else torch.ones_like(wrong)).nonzero().flatten()
    return list(shown.split(page_size)) if len(shown) else []


def prediction_browser(images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor,
                       classes: list[str]) -> widgets.Widget:
    """Page through predictions (images normalised), by default only the errors; the page range follows the filter."""
    wrong = probs.argmax(1) != labels
    page = widgets.IntSlider(0, 0, 0, description="page")
    errors_only = widgets.Checkbox(True, description="errors only")

    def follow_filter(_=None) -> None:  # registered before interactive's own observer, so it runs first
        page.max = max(0, len(prediction_pages(wrong, errors_only.value)) - 1)

    errors_only.observe(follow_filter, "value")
    follow_filter()

    def show(page: int, errors_only: bool) -> None:
        pages = prediction_pages(wrong, errors_only)
        if not pages:
            print("no errors among these predictions")
            return
        idx = pages[min(page, len(pages) - 1)]
        show_images(images[idx], [f"{classes[labels[i]]}→{classes[probs[i].argmax()]} {probs[i].max():.2f}"
                                  for i in idx], ncols=8)
    return widgets.interactive(show, page=page, errors_only=errors_only)
