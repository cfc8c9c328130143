"""Study analysis for the notebook: every figure and table it shows comes from here.

Each function takes a study (and the MLflow tracking URI where it needs the
runs) and returns a matplotlib figure or a pandas table, so the notebook stays
a list of calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from optuna.visualization import matplotlib as vis_mpl

from tuner.errors import InputError
from tuner.objectives import parse_bound
from tuner.study import records
from tuner.study.summary import (
    champion,
    completed,
    feasible,
    objective_of,
    pareto_front,
    summarize,
    top_trials,
)
from tuner.tracking.tracker import EPOCH_PREFIX

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _figure(axes: Any) -> Figure:
    ax = axes.flat[0] if isinstance(axes, np.ndarray) else axes
    figure: Figure = ax.figure
    figure.set_size_inches(9, 5)
    return figure


def need_trials(study: optuna.Study, n: int, what: str) -> None:
    if len(completed(study)) < n:
        raise InputError(
            f"study {study.study_name}: {what} needs at least {n} complete trials, it has "
            f"{len(completed(study))}; run more trials."
        )


def objective_target(study: optuna.Study) -> dict[str, Any]:
    """What Optuna's plots and importances read of a multi-objective study
    (`--objectives`): its validation objective; nothing for a single objective."""
    if len(study.directions) == 1:
        return {}
    return {"target": objective_of, "target_name": (study.metric_names or ["objective"])[0]}


def optimization_history(study: optuna.Study) -> Figure:
    """Objective of every trial and the best so far."""
    need_trials(study, 1, "the optimization history")
    return _figure(vis_mpl.plot_optimization_history(study, **objective_target(study)))


def param_importances(study: optuna.Study) -> Figure:
    """The importance of each parameter for the objective (Optuna's default
    evaluator, PED-ANOVA)."""
    need_trials(study, 2, "parameter importances")
    with _few_trials_allowed():
        return _figure(vis_mpl.plot_param_importances(study, **objective_target(study)))


@contextmanager
def _few_trials_allowed() -> Iterator[None]:
    """PED-ANOVA's warning that a parameter has few trials in a region left out: on a
    short study every parameter has, and the importances are still computed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some regimes for parameter")
        # --objectives: the target is the validation objective, minimised, as it says.
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
        yield


PARALLEL_AXES = 6  # parameters a static parallel-coordinates figure shows legibly


def parallel_coordinates(study: optuna.Study) -> Figure:
    """Every complete trial as a line across its most important parameters (at most
    `PARALLEL_AXES`, so the figure reads at its size), coloured by objective."""
    need_trials(study, 2, "parallel coordinates")
    params = top_params(study, PARALLEL_AXES)
    return _figure(
        vis_mpl.plot_parallel_coordinate(study, params=params, **objective_target(study))
    )


def top_params(study: optuna.Study, k: int) -> list[str]:
    """The `k` most important parameters that every complete trial has."""
    need_trials(study, 2, "parameter importances")
    shared = set.intersection(*(set(t.params) for t in completed(study)))
    with _few_trials_allowed():
        target = objective_target(study).get("target")
        ranked = optuna.importance.get_param_importances(
            study, params=sorted(shared), target=target
        )
    return list(ranked)[:k]


def top_two_params(study: optuna.Study) -> list[str]:
    """The two most important parameters that every complete trial has."""
    return top_params(study, 2)


def contour_of_top_two(study: optuna.Study) -> Figure:
    """Objective over the two most important parameters (slice plots if only one varies)."""
    params = top_two_params(study)
    target = objective_target(study)
    if len(params) < 2:
        return _figure(vis_mpl.plot_slice(study, params=params, **target))
    return _figure(vis_mpl.plot_contour(study, params=params, **target))


def front_figure(study: optuna.Study) -> Figure:
    """A multi-objective study's trials (`--objectives`): the validation objective
    against the first measure, the Pareto front joined, trials over a `--constraint`
    bound greyed, and a bound on that measure drawn."""
    need_trials(study, 1, "the Pareto front")
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    figure, ax = plt.subplots(figsize=(7, 4.5))
    done = [t for t in completed(study) if t.values]
    ok = [t for t in done if feasible(t)]
    over = [t for t in done if not feasible(t)]
    ax.scatter([t.values[1] for t in ok], [t.values[0] for t in ok], label="trial", alpha=0.6)
    if over:
        ax.scatter([t.values[1] for t in over], [t.values[0] for t in over], color="0.7",
                   label="over a bound")  # fmt: skip
    front = sorted(pareto_front(study), key=lambda t: t.values[1])
    ax.step([t.values[1] for t in front], [t.values[0] for t in front], where="post",
            color="C3", marker="o", label="Pareto front")  # fmt: skip
    chosen = champion(study)
    if chosen is not None:
        ax.scatter([chosen.values[1]], [chosen.values[0]], s=160, facecolors="none",
                   edgecolors="k", label=f"champion #{chosen.number}")  # fmt: skip
    for text in records.get(study, records.CONFIG, {}).get("constraint") or ():
        bound = parse_bound(text)
        if bound.name == names[1]:
            ax.axvline(bound.limit, color="k", linestyle="--", label=text)
    ax.set(xlabel=names[1], ylabel=names[0], title=f"study {study.study_name}: Pareto front")
    ax.legend()
    figure.tight_layout()
    return figure


def val_loss_histories(
    study: optuna.Study, tracking_uri: str, *, top: int = 5
) -> dict[int, tuple[list[int], list[float]]]:
    """Per-epoch validation loss (epochs from 1) of the best `top` trials, from MLflow."""
    client = MlflowClient(tracking_uri)
    best = top_trials(study, top)
    out = {}
    for trial in best:
        run_id = trial.user_attrs.get(records.MLFLOW_RUN_ID)
        if run_id:
            history = client.get_metric_history(run_id, f"{EPOCH_PREFIX}val_loss")
            steps = [m.step for m in history]
            if not history:  # recorded by an earlier version: plain name, epochs from 0
                history = client.get_metric_history(run_id, "val_loss")
                steps = [m.step + 1 for m in history]
            out[trial.number] = (steps, [m.value for m in history])
    return out


def learning_curves(study: optuna.Study, tracking_uri: str, *, top: int = 5) -> Figure:
    """Per-epoch validation loss of the best `top` trials, read from their MLflow runs."""
    figure, ax = plt.subplots(figsize=(9, 5))
    for number, (steps, values) in val_loss_histories(study, tracking_uri, top=top).items():
        ax.plot(steps, values, marker="o", label=f"trial {number}")
    ax.set(xlabel="epoch", ylabel="validation loss", title=f"{study.study_name}: top {top} trials")
    ax.legend()
    return figure


def best_against_baselines(study: optuna.Study) -> pd.DataFrame:
    """Validation and test metrics of the best trial beside the naive baselines."""
    summary = summarize(study, storage="", tracking_uri="")
    rows = {"best trial (val)": summary["best_val"], "best trial (test)": summary["best_test"]}
    for name, metrics in summary["baselines"].items():
        rows[name.replace("_", " ")] = metrics
    return pd.DataFrame({k: v for k, v in rows.items() if v}).T


def compare_studies(a: optuna.Study, b: optuna.Study) -> tuple[pd.DataFrame, Figure]:
    """Two studies side by side: their best results and their best-so-far curves."""
    table = pd.DataFrame(
        {s.study_name: _best_row(s) for s in (a, b)},
    )
    figure, ax = plt.subplots(figsize=(9, 5))
    for study in (a, b):
        values = [float(objective_of(t) or 0.0) for t in completed(study)]
        ax.plot(np.minimum.accumulate(values), marker=".", label=study.study_name)
    ax.set(xlabel="complete trial", ylabel="best objective so far", title="studies compared")
    ax.legend()
    return table, figure


def _best_row(study: optuna.Study) -> dict[str, Any]:
    summary = summarize(study, storage="", tracking_uri="")
    row: dict[str, Any] = {
        "objective": summary["objective"],
        "complete": summary["n_complete"],
        "pruned": summary["n_pruned"],
        "failed": summary["n_failed"],
        "best trial": summary["best_trial"],
    }
    row |= {f"val {k}": v for k, v in (summary["best_val"] or {}).items()}
    row |= {f"test {k}": v for k, v in (summary["best_test"] or {}).items()}
    return row
