"""The study's plots and trials table, logged to the parent MLflow run."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import optuna
from optuna import visualization as vis
from optuna.visualization import matplotlib as vis_mpl

from tuner._console import err
from tuner._summary import completed

PlotFn = Callable[[optuna.Study], Any]
PLOTS: dict[str, tuple[PlotFn, PlotFn]] = {
    "optimization_history": (vis.plot_optimization_history, vis_mpl.plot_optimization_history),
    "param_importances": (vis.plot_param_importances, vis_mpl.plot_param_importances),
    "parallel_coordinate": (vis.plot_parallel_coordinate, vis_mpl.plot_parallel_coordinate),
}


def write_study_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Each plot as PNG, and all of them in one self-contained interactive HTML page.

    Plots the study cannot support yet (too few trials) are skipped with a note.
    """
    if len(completed(study)) < 2:
        return []
    written: list[Path] = []
    sections: list[str] = []
    for name, (interactive, static) in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = interactive(study)
                axes = static(study)
                axes.figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
                plt.close("all")
        except (ValueError, RuntimeError) as e:
            err.print(f"plot {name} skipped: {e}")
            continue
        # plotly.js is embedded once so the page works offline.
        sections.append(figure.to_html(full_html=False, include_plotlyjs=not sections))
        written.append(folder / f"{name}.png")
    if sections:
        page = folder / "study_plots.html"
        page.write_text(f"<html><body>{''.join(sections)}</body></html>")
        written.append(page)
    return written


def log_study_plots(tracker: Any, study: optuna.Study) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plots").mkdir()
        write_study_plots(study, folder / "plots")
        study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
        tracker.log_artifacts(tracker.parent_id, folder)
