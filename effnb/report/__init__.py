"""What a reader sees: notebook execution and HTML reports, the index, figures, explorers, the README's blocks.

Each name loads its module on first use, so a process pays only for what it uses: a notebook's kernel needs the
figures and explorers (matplotlib, seaborn, ipywidgets), the study's runner papermill, nbformat and nbconvert,
and stopping a notebook's processes (:mod:`effnb.report.processes`) only the standard library and psutil.
"""
from importlib import import_module

_MODULES = {
    "execute": ("NotebookFailed", "run_study"),
    "index": ("render_reports",),
    "plots": ("plot_accuracy_vs_compute", "plot_hardest_images", "plot_histogram", "plot_learning_curves",
              "plot_prediction_grid", "plot_resolution_sweep", "plot_selection", "plot_sizes", "results_frame",
              "show_images", "show_jpeg", "size_summary"),
    "readme": ("update_readme",),
    "widgets": ("crop_explorer", "draw_crop", "prediction_browser", "scaling_explorer", "show_explorer"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> object:
    if name in _HOME:
        return getattr(import_module(f"effnb.report.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
