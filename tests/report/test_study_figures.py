"""Figures that must read at their size, with their units."""

from __future__ import annotations

import optuna

from tuner import analysis
from tuner.report.study_figures import PARALLEL_AXES


def test_static_parallel_coordinates_show_only_the_most_important_parameters() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(
        lambda t: sum((i + 1) * t.suggest_float(f"p{i}", 0, 1) for i in range(10)), n_trials=20
    )
    figure = analysis.parallel_coordinates(study)
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert len(labels) == PARALLEL_AXES + 1  # the objective, then the parameters
    assert "p9" in labels and "p0" not in labels  # p9 weighs most, p0 least


def test_forecast_figure_has_dates_and_units() -> None:
    from tuner.data.catalog import load_dataset, resolve_dataset
    from tuner.model.build import build_model

    data = load_dataset(resolve_dataset("co2"))
    params = {"seq_len": 52, "units_0": 4}
    test = data.windows(52)["test"]
    figure = analysis.model_figure(build_model(params, data.info), data, test, params, "co2")
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("date", "co2 (ppm)")
    observed = ax.lines[0].get_xdata()
    assert str(observed[0])[:10] == str(data.timestamps[data.borders[1]])[:10]


def test_a_confusion_matrix_shows_every_class_when_the_test_lacks_one() -> None:
    from types import SimpleNamespace

    import numpy as np

    from tuner.report.model_figures import confusion

    data = SimpleNamespace(classes=("a", "b", "c"))
    test = SimpleNamespace(y=np.array([0, 1, 1, 0]))  # no 'c' in the test split
    outputs = np.eye(3)[[0, 1, 0, 0]].astype("float32")
    figure = confusion(outputs, data, test, "set")
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["a", "b", "c"]
