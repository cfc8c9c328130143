"""A trained model drawn on the test split for its task: forecasts against the
truth, a confusion matrix, or text sampled from a character model. Logged with
the best trial and shown by the notebook.
"""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from tuner.data.sequences import class_probabilities
from tuner.errors import InputError
from tuner.model import params as hparams
from tuner.model.portable import trained_part
from tuner.model.sample import generate
from tuner.report.study_figures import need_trials
from tuner.study import records
from tuner.study.setup import stored_dataset
from tuner.study.summary import champion
from tuner.tasks.base import get_task
from tuner.tracking.models import load_logged_model


def model_figure(model: Any, data: Any, test: Any, params: dict[str, Any], name: str) -> Figure:
    """A trained model on the test split, drawn for its task (`Task.figure`)."""
    figure: Figure = get_task(data.spec.task).figure(model, data, test, params, name)
    return figure


def forecast_plot(predicted: np.ndarray, data: Any, test: Any, name: str) -> Figure:
    """The first target over the test split, in its units, against time (the rows'
    timestamps where the data has them): observed, 1 step and `horizon` steps ahead."""
    pred = data.to_original_units(predicted)
    true = data.to_original_units(np.asarray(test.y))
    # Window i's first target is test row i: the test part starts at the validation border.
    rows = data.borders[1] + np.arange(len(pred) + pred.shape[1] - 1)
    when = data.timestamps[rows] if data.timestamps is not None else rows
    last = pred.shape[1] - 1
    figure, ax = plt.subplots(figsize=(11, 5))
    ax.plot(when[: len(true)], true[:, 0, 0], label="observed", color="black", linewidth=1)
    ax.plot(when[: len(pred)], pred[:, 0, 0], label="best model, 1 step ahead", alpha=0.8)
    ax.plot(when[last:], pred[:, -1, 0], label=f"{last + 1} steps ahead")
    target = data.spec.target[0]
    ax.set(
        xlabel=data.spec.time_col or "row",
        ylabel=f"{target} ({data.spec.units})" if data.spec.units else target,
        title=f"{name}: test split",
    )
    ax.legend()
    figure.autofmt_xdate()
    return figure


def confusion(outputs: np.ndarray, data: Any, test: Any, name: str) -> Figure:
    predicted = class_probabilities(outputs).argmax(1)
    figure, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay.from_predictions(  # every class, those absent from the test too
        test.y,
        predicted,
        labels=list(range(len(data.classes))),
        display_labels=list(data.classes),
        ax=ax,
        colorbar=False,
    )
    ax.set_title(f"{name}: test split")
    return figure


def sampled_text(model: Any, data: Any, name: str, seq_len: int) -> Figure:
    start = data.borders[1]  # a prompt of the model's whole window: every step compiled
    prompt = "".join(data.vocab[c] for c in data.codes[start : start + max(40, seq_len)])
    text = generate(model, data.vocab, prompt, context=seq_len, length=300, temperature=0.7, seed=0)
    figure, ax = plt.subplots(figsize=(11, 5))
    ax.axis("off")
    ax.set_title(f"{name}: 300 characters sampled after a test-split prompt (temperature 0.7)")
    ax.text(0, 1, _wrap(text), va="top", family="monospace", fontsize=9)
    return figure


def _wrap(text: str, width: int = 100) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def best_model_figure(study: optuna.Study, tracking_uri: str) -> Figure:
    """The best model on the test split: forecasts against the truth, a confusion
    matrix, or text sampled from the character model."""
    model, data, params = _best_model(study, tracking_uri)
    window = hparams.TrialParams(params, max_seq_len=data.info.max_seq_len).window
    test = data.windows(window)["test"]
    return model_figure(model, data, test, params, study.study_name)


def _best_model(study: optuna.Study, tracking_uri: str) -> tuple[Any, Any, dict[str, Any]]:
    need_trials(study, 1, "the best model")
    best = champion(study)
    if best is None:
        raise InputError(f"study {study.study_name!r}: no complete trial meets its constraints")
    model = trained_part(load_logged_model(best.user_attrs[records.MODEL_URI], tracking_uri))
    return model, stored_dataset(study), best.params
