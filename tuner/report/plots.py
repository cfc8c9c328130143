"""The study's plots and trials table, logged to the parent MLflow run."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import optuna
from optuna import visualization as vis
from optuna.visualization import matplotlib as vis_mpl

from tuner.errors import InputError
from tuner.report.console import err
from tuner.report.study_figures import (
    PARALLEL_AXES,
    front_figure,
    learning_curves,
    objective_target,
    top_params,
    top_two_params,
    val_loss_histories,
)
from tuner.study.summary import completed

PlotFn = Callable[..., Any]  # (study, **target) -> figure or axes


def _top_two(interactive: bool) -> PlotFn:
    """Contour of the two most important parameters (a slice plot if only one varies)."""

    def plot(study: optuna.Study, **target: Any) -> Any:
        params = top_two_params(study)
        module: Any = vis if interactive else vis_mpl
        if len(params) < 2:
            return module.plot_slice(study, params=params, **target)
        return module.plot_contour(study, params=params, **target)

    return plot


def parallel_coordinates_axes(study: optuna.Study, **target: Any) -> Any:
    return vis_mpl.plot_parallel_coordinate(
        study, params=top_params(study, PARALLEL_AXES), **target
    )


PLOTS: dict[str, tuple[PlotFn, PlotFn]] = {
    "optimization_history": (vis.plot_optimization_history, vis_mpl.plot_optimization_history),
    "param_importances": (vis.plot_param_importances, vis_mpl.plot_param_importances),
    # Interactive: every parameter; static: the most important ones, legible at its size.
    "parallel_coordinate": (vis.plot_parallel_coordinate, parallel_coordinates_axes),
    "contour_top_two": (_top_two(True), _top_two(False)),
}


def write_study_plots(
    study: optuna.Study, folder: Path, *, tracking_uri: str | None = None
) -> list[Path]:
    """Each plot as PNG, and all of them in one self-contained interactive HTML page;
    with `tracking_uri`, also the learning curves of the top five trials (PNG).

    Plots the study cannot support yet (too few trials) are skipped with a note.
    """
    if len(completed(study)) < 2:
        return []
    written: list[Path] = []
    sections: list[str] = []
    target = objective_target(study)
    if target:  # --objectives: the Pareto front's figure first
        front = front_figure(study)
        front.savefig(folder / "pareto_front.png", dpi=100, bbox_inches="tight")
        plt.close(front)
        written.append(folder / "pareto_front.png")
    for name, (interactive, static) in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = interactive(study, **target)
                axes = static(study, **target)
                axes = axes.flat[0] if hasattr(axes, "flat") else axes
                axes.figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
                plt.close(axes.figure)  # only its own: a notebook's figures stay open
        except (ValueError, RuntimeError, InputError) as e:
            err.print(f"plot {name} skipped: {e}")
            continue
        # plotly.js is embedded once so the page works offline.
        sections.append(figure.to_html(full_html=False, include_plotlyjs=not sections))
        written.append(folder / f"{name}.png")
    if tracking_uri:
        curves_figure = learning_curves(study, tracking_uri)
        curves_figure.savefig(folder / "learning_curves.png", dpi=100)
        plt.close(curves_figure)
        written.append(folder / "learning_curves.png")
        curves = _learning_curves_interactive(study, tracking_uri)
        sections.append(curves.to_html(full_html=False, include_plotlyjs=not sections))
    if sections:
        page = folder / "study_plots.html"
        page.write_text(f"<html><body>{''.join(sections)}</body></html>")
        written.append(page)
    return written


def _learning_curves_interactive(study: optuna.Study, tracking_uri: str) -> Any:
    import plotly.graph_objects as go  # deferred: only the interactive page needs it

    figure = go.Figure()
    for number, (steps, values) in val_loss_histories(study, tracking_uri).items():
        figure.add_trace(
            go.Scatter(x=steps, y=values, mode="lines+markers", name=f"trial {number}")
        )
    figure.update_layout(
        title="Learning curves of the top five trials", xaxis_title="epoch", yaxis_title="val_loss"
    )
    return figure


def log_study_plots(tracker: Any, study: optuna.Study) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plots").mkdir()
        write_study_plots(study, folder / "plots", tracking_uri=tracker.tracking_uri)
        study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
        tracker.log_artifacts(tracker.parent_id, folder)
