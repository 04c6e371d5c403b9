"""What a reader sees: notebook execution and HTML reports, the index, figures, explorers, the README's blocks."""
from effnb.report.execute import NotebookFailed, run_study
from effnb.report.index import render_reports
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
from effnb.report.readme import update_readme
from effnb.report.widgets import (
                                crop_explorer,
                                draw_crop,
                                prediction_browser,
                                scaling_explorer,
                                show_explorer,
)

__all__ = ["NotebookFailed", "crop_explorer", "draw_crop", "plot_accuracy_vs_compute", "plot_hardest_images",
           "plot_histogram", "plot_learning_curves", "plot_prediction_grid", "plot_resolution_sweep", "plot_selection",
           "plot_sizes", "prediction_browser", "render_reports", "results_frame", "run_study", "scaling_explorer",
           "show_explorer", "show_images", "show_jpeg", "size_summary", "update_readme"]
