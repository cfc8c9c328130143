"""Top-K ensemble (`--ensemble K`): the champion may average the predictions of
the study's K best trials (class probabilities for classification, forecasts for
forecasting, next-character logits for character models), saved as one model of
built-in Keras layers.

The ensemble is scored the way its members were: on the same validation split,
with the models its member trials kept in their MLflow runs (a member whose model
cannot be read is trained again with its trial's seed), or on the same
cross-validation folds (each member retrained on each fold with its trial's
seed). Its validation value decides whether it replaces the best single trial as
champion; both are reported. Runs in a worker process after the trials, where
Keras is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import optuna
from optuna.trial import FrozenTrial

from tuner.data.spec import DatasetInfo
from tuner.engine.objective import Objective
from tuner.model import params as hparams
from tuner.model.batches import predict_windows
from tuner.model.budget import ROUNDS_ATTR, fit_seconds
from tuner.model.train import EpochRecorder, FitSettings, evaluate, fit_trial, refit
from tuner.study import records
from tuner.study.summary import objective_of, top_trials
from tuner.tasks.base import get_task


def ensemble_model(members: Sequence[keras.Model], info: DatasetInfo) -> keras.Model:
    """One model that averages `members`' outputs. Forecasters may read windows of
    different lengths: the ensemble reads the longest, each member its last steps.
    Character models read any length; their logits are averaged (the normalised
    geometric mean of their probabilities: on `alice` 0.002 bits per character
    better than the mean of the probabilities, on validation and test)."""
    inputs = get_task(info.task).ensemble_input(members)
    outputs = []
    for i, member in enumerate(members):
        member.name = f"member_{i}"  # layer names must be unique in the ensemble
        short = inputs.shape[1] - member.input_shape[1] if inputs.shape[1] else 0
        x = keras.layers.Cropping1D((short, 0))(inputs) if short else inputs
        outputs.append(member(x))
    return keras.Model(inputs, keras.layers.Average(name="ensemble")(outputs), name="ensemble")


def run_ensemble(study: optuna.Study, objective: Objective, *, size: int) -> dict[str, Any]:
    """Score, build and (when it beats the best trial on validation) register the
    ensemble of the `size` best complete trials; the record is also stored in the
    study's `ensemble` attribute."""
    members = top_trials(study, size)
    if len(members) < 2:
        record: dict[str, Any] = {"skipped": f"{len(members)} complete trial(s); need 2"}
        records.put(study, records.ENSEMBLE, record)
        return record
    data = objective.data
    metric = data.info.metric
    parts = objective.parts()
    kept = len(parts) == 1  # no folds: the trials' own models are the members
    scored = [_score_part(members, part, windows, objective, kept) for part, windows in parts]
    val = {k: float(np.mean([s[0][k] for s in scored])) for k in scored[0][0]}
    models = scored[0][1] if len(scored) == 1 else _refit_members(members, objective)
    model = ensemble_model(models, data.info)
    best_single = float(objective_of(members[0]) or 0.0)
    record = {
        "members": [t.number for t in members],
        "val_metrics": val,
        "best_single_value": best_single,
        "champion": val[metric] < best_single,
        "retrained": sorted({n for s in scored for n in s[2]}),
    }
    if len(scored) > 1:
        record["fold_values"] = [s[0][metric] for s in scored]
    record |= _record(objective, model, record, members)
    records.put(study, records.ENSEMBLE, record)
    return record


def _score_part(
    members: list[FrozenTrial], data: Any, windows: Any, objective: Objective, kept: bool
) -> tuple[dict[str, float], list[keras.Model], list[int]]:
    """The averaged members' validation metrics on one split (or fold), the members'
    models there and the trials trained again for it (`kept`: first try the models
    the trials kept)."""
    predictions, models, retrained = [], [], []
    # Character models are scored on the longest member's windows (each reads any
    # length); the others each on its own windows, which share their targets.
    longest = max(_seq_len(trial, data.info) for trial in members)
    for trial in members:
        split = windows.get(_seq_len(trial, data.info))
        model = objective.kept_member(trial) if kept else None
        if model is None:
            settings = FitSettings(
                max_epochs=objective.config.max_epochs,
                patience=objective.config.patience,
                seed=objective.config.seed + trial.number,
                seconds=fit_seconds(objective.config.timeout, folds=0),
            )
            model = fit_trial(trial.params, split, data, settings, recorder=EpochRecorder()).model
            retrained.append(trial.number)
        batch_size = hparams.TrialParams.of(trial.params).batch_size
        # A model predicting every step reads any window: all score the longest.
        scored_on = windows.get(longest) if data.info.kind.per_step else split
        predictions.append(predict_windows(model, scored_on["val"], batch_size=batch_size))
        models.append(model)
    target = windows.get(longest)["val"].y
    return data.metrics(target, np.mean(predictions, axis=0)), models, retrained


def _refit_members(members: list[FrozenTrial], objective: Objective) -> list[keras.Model]:
    """Under cross-validation: each member refit on all non-test data for its
    trial's best epoch (the folds' mean), as the single champion is."""
    data = objective.data
    return [
        refit(
            trial.params,
            objective.windows.get(_seq_len(trial, data.info)),
            data,
            epochs=int(trial.user_attrs[records.BEST_EPOCH]),
            seed=objective.config.seed + trial.number,
            in_rounds=ROUNDS_ATTR in trial.user_attrs,
        )
        for trial in members
    ]


def _seq_len(trial: FrozenTrial, info: DatasetInfo) -> int:
    return hparams.TrialParams.of(trial.params, max_seq_len=info.max_seq_len).window


def _record(
    objective: Objective, model: keras.Model, record: dict[str, Any], members: list[Any]
) -> dict[str, Any]:
    """Log an ensemble as its own MLflow run beside the trials; when it is the
    champion, also its test metrics and the registered model. Returns what
    was added (run id, and test metrics and model URI for a champion)."""
    data, tracker = objective.data, objective.tracker
    info = data.info
    run = tracker.client.create_run(
        tracker.experiment_id,
        run_name=f"ensemble-top{len(members)}",
        tags={"mlflow.parentRunId": tracker.parent_id, "role": "ensemble"},
    )
    run_id = str(run.info.run_id)
    tracker.log_params(run_id, {"members": record["members"]})
    metrics = {f"val_{k}": v for k, v in record["val_metrics"].items()}
    added: dict[str, Any] = {"mlflow_run_id": run_id}
    if record["champion"]:
        longest = max(
            hparams.TrialParams.of(t.params, max_seq_len=info.max_seq_len).window for t in members
        )
        windows = objective.windows.get(longest)
        batch_size = hparams.TrialParams.of(members[0].params).batch_size
        test = evaluate(model, windows["test"], data, batch_size=batch_size)
        metrics |= {f"test_{k}": v for k, v in test.items()}
        added["test_metrics"] = test
        added["seq_len"] = longest
        added["model_uri"] = objective.log_model(
            run_id,
            model,
            longest,
            what=f"top-{len(members)} ensemble",
            value=record["val_metrics"][info.metric],
        )
    tracker.log_metrics(run_id, metrics)
    tracker.set_tags(run_id, {"champion": record["champion"]})
    tracker.end(run_id, "FINISHED")
    return added
