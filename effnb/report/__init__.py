"""What a reader sees: notebook execution and HTML reports, the index, figures, explorers, the README's blocks.

The runner, the index and the README's blocks (papermill, nbformat, nbconvert: about 4 s of imports on a 2-core
CPU) load on first use, so a notebook's kernel, which needs only the figures and explorers, does not pay for them.
"""
from importlib import import_module

from effnb.report.plots import (
                                plot_accuracy_vs_compute,
                                plot_hardest_images,
                                plot_histogram,
                                plot_learning_curves,
                                plot_prediction_grid,
                                plot_resolution_sweep,
                                plot_selection,
                                plot_sizes,
                                results_frame,
                                show_images,
                                show_jpeg,
                                size_summary,
)
from effnb.report.widgets import (
                                crop_explorer,
                                draw_crop,
                                prediction_browser,
                                scaling_explorer,
                                show_explorer,
)

_LAZY = {"NotebookFailed": "execute", "run_study": "execute", "render_reports": "index", "update_readme": "readme"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"effnb.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NotebookFailed", "crop_explorer", "draw_crop", "plot_accuracy_vs_compute", "plot_hardest_images",
           "plot_histogram", "plot_learning_curves", "plot_prediction_grid", "plot_resolution_sweep", "plot_selection",
           "plot_sizes", "prediction_browser", "render_reports", "results_frame", "run_study", "scaling_explorer",
           "show_explorer", "show_images", "show_jpeg", "size_summary", "update_readme"]
