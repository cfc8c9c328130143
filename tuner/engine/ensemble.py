"""Top-K ensemble (`--ensemble K`): the champion may average the predictions of
the study's K best trials (class probabilities for classification, forecasts for
forecasting, next-character probabilities for character models, answered as
their log), saved as one model of built-in Keras layers.

The ensemble is scored the way its members were: on the same validation split,
or on the same cross-validation folds (each member retrained on each fold with
its trial's seed). Its validation value decides whether it replaces the best
single trial as champion; both are reported. Runs in a worker process after the
trials, where Keras is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import optuna
from optuna.trial import FrozenTrial

from tuner.data.spec import DatasetInfo
from tuner.engine.objective import Objective
from tuner.model import params as hparams
from tuner.model.train import EpochRecorder, FitSettings, fit_trial, predict_windows, refit
from tuner.study.summary import top_trials


def ensemble_model(members: Sequence[keras.Model], info: DatasetInfo) -> keras.Model:
    """One model that averages `members`' outputs. Forecasters may read windows of
    different lengths: the ensemble reads the longest, each member its last steps.
    Character models read any length; their logits become probabilities, averaged,
    and the ensemble answers the log of that mean (logits of the mixture)."""
    if info.task == "char_lm":
        return _char_ensemble(members)
    shape = max((m.input_shape[1:] for m in members), key=lambda s: s[0] or 0)
    inputs = keras.Input(shape, name="window" if info.task == "forecasting" else "sequence")
    outputs = []
    for i, member in enumerate(members):
        member.name = f"member_{i}"  # layer names must be unique in the ensemble
        short = shape[0] - member.input_shape[1]
        x = keras.layers.Cropping1D((short, 0))(inputs) if short else inputs
        outputs.append(member(x))
    return keras.Model(inputs, keras.layers.Average(name="ensemble")(outputs), name="ensemble")


def _char_ensemble(members: Sequence[keras.Model]) -> keras.Model:
    chars = keras.Input((None,), dtype="int32", name="chars")
    log_p = []
    for i, member in enumerate(members):
        member.name = f"member_{i}"
        log_p.append(keras.layers.Activation("log_softmax", name=f"log_p_{i}")(member(chars)))
    # log(mean p) = logsumexp(log p) - log K, without p underflowing to 0.
    total = keras.ops.logsumexp(keras.ops.stack(log_p, axis=-1), axis=-1)
    mean = keras.layers.Rescaling(1.0, offset=-math.log(len(members)), name="ensemble")(total)
    return keras.Model(chars, mean, name="ensemble")


def mixed(predictions: Sequence[np.ndarray], task: str) -> np.ndarray:
    """The ensemble's output from its members' (what `ensemble_model` computes)."""
    if task != "char_lm":
        return np.mean(predictions, axis=0)
    stacked = np.stack([np.asarray(p, np.float64) for p in predictions])
    log_p = stacked - _logsumexp(stacked, axis=-1)[..., None]
    return _logsumexp(log_p, axis=0) - math.log(len(predictions))


def _logsumexp(x: np.ndarray, *, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.exp(x - top).sum(axis=axis))


def run_ensemble(study: optuna.Study, objective: Objective, *, size: int) -> dict[str, Any]:
    """Score, build and (when it beats the best trial on validation) register the
    ensemble of the `size` best complete trials; the record is also stored in the
    study's `ensemble` attribute."""
    members = top_trials(study, size)
    if len(members) < 2:
        record: dict[str, Any] = {"skipped": f"{len(members)} complete trial(s); need 2"}
        study.set_user_attr("ensemble", record)
        return record
    data = objective.data
    metric = data.info.metric
    scored = [_score_part(members, part, windows, objective) for part, windows in objective.parts()]
    val = {k: float(np.mean([s[0][k] for s in scored])) for k in scored[0][0]}
    models = scored[0][1] if len(scored) == 1 else _refit_members(members, objective)
    model = ensemble_model(models, data.info)
    best_single = float(members[0].value or 0.0)
    record = {
        "members": [t.number for t in members],
        "val_metrics": val,
        "best_single_value": best_single,
        "champion": val[metric] < best_single,
    }
    if len(scored) > 1:
        record["fold_values"] = [s[0][metric] for s in scored]
    record |= objective.record_ensemble(model, record, members)
    study.set_user_attr("ensemble", record)
    return record


def _score_part(
    members: list[FrozenTrial], data: Any, windows: Any, objective: Objective
) -> tuple[dict[str, float], list[keras.Model]]:
    """The averaged members' validation metrics on one split (or fold), and the
    members trained there."""
    predictions, models = [], []
    # Character models are scored on the longest member's windows (each reads any
    # length); the others each on its own windows, which share their targets.
    longest = max(_seq_len(trial, data.info) for trial in members)
    for trial in members:
        split = windows.get(_seq_len(trial, data.info))
        settings = FitSettings(
            max_epochs=objective.config.max_epochs,
            patience=objective.config.patience,
            seed=objective.config.seed + trial.number,
        )
        result = fit_trial(trial.params, split, data, settings, recorder=EpochRecorder())
        batch_size = hparams.batch_size(trial.params)
        scored_on = windows.get(longest) if data.info.task == "char_lm" else split
        predictions.append(predict_windows(result.model, scored_on["val"], batch_size=batch_size))
        models.append(result.model)
    target = windows.get(longest)["val"].y
    return data.metrics(target, mixed(predictions, data.info.task)), models


def _refit_members(members: list[FrozenTrial], objective: Objective) -> list[keras.Model]:
    """Under cross-validation: each member refit on all non-test data for its
    trial's best epoch (the folds' mean), as the single champion is."""
    data = objective.data
    return [
        refit(
            trial.params,
            objective.windows.get(_seq_len(trial, data.info)),
            data,
            epochs=int(trial.user_attrs["best_epoch"]),
            seed=objective.config.seed + trial.number,
        )
        for trial in members
    ]


def _seq_len(trial: FrozenTrial, info: DatasetInfo) -> int:
    return hparams.window_length(trial.params, info.max_seq_len)
