"""The objective: train one trial and record it (Optuna state, MLflow child run,
champion model). Runs inside a worker process; this is where Keras is imported.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import optuna
from mlflow.exceptions import MlflowException
from optuna.trial import FrozenTrial

from tuner.config import TuneConfig
from tuner.data.spec import Dataset
from tuner.data.windows import WindowCache
from tuner.devices import MemoryBound, describe_device
from tuner.engine.measuring import TrialMeasures, finalize
from tuner.errors import InputError, TrackingUnavailable, TrialFailed
from tuner.model import params as hparams
from tuner.model.budget import ROUND_TARGETS, ROUNDS_ATTR, fit_seconds
from tuner.model.build import objective_monitor
from tuner.model.portable import in_data_units
from tuner.model.serving import request_example
from tuner.model.train import (
    EpochRecorder,
    FitSettings,
    Resume,
    RoundPruning,
    fit_trial,
    refit,
)
from tuner.model.transfer import INIT_FROM, Transfer
from tuner.paths import MODEL_FILE
from tuner.report.console import TrialProgress
from tuner.space import OptunaHP, SearchSpace
from tuner.study import records
from tuner.study.summary import (
    leads,
    rank_of,
    refuse_surplus,
)
from tuner.study.warm import origin_tags
from tuner.tracking.models import load_logged_model, load_pretrained
from tuner.tracking.outage import tracking_down, unavailable
from tuner.tracking.tracker import EPOCH_PREFIX, OBJECTIVE_TAG, Tracker

MEMBER_ARTIFACT = "ensemble_member"  # a top-K trial's trained model, in its MLflow run


class Objective:
    """Train one trial and record it: Optuna state, MLflow child run, champion model."""

    def __init__(
        self, *, space: SearchSpace, data: Dataset, config: TuneConfig, tracker: Tracker
    ) -> None:
        self._space = space
        self._data = data
        self._config = config
        self._tracker = tracker
        self.windows = WindowCache(data)
        self._folds = [(fold, WindowCache(fold)) for fold in data.folds()]
        self._epoch_offset = 0  # epochs of earlier folds, for per-epoch MLflow steps
        self._device = describe_device()
        self._init = load_pretrained(config.init_from, tracker.tracking_uri)
        self.current: optuna.Trial | None = None
        self.progress: TrialProgress | None = None  # set by the worker while it runs trials
        self.process_started = 0.0  # time.time() when this worker process was started
        self.deadline: float | None = None  # time.time() when the study's --timeout ends
        self._run_id = ""
        self._memory = MemoryBound()
        self._measures = TrialMeasures(config, data.info, tracker)

    def __call__(
        self, trial: optuna.Trial, resume: Resume | None = None
    ) -> float | tuple[float, ...]:
        """Train `trial`'s configuration (or continue `resume.model`) and record it."""
        self.current = trial
        self._run_id = ""
        try:
            value = self._run(trial, EpochRecorder(self._log_epoch), resume)
        except BaseException as e:
            # Nothing more can be written there (also while the trial was being closed,
            # when its buffered curves were written): say so in Optuna.
            if tracking_down(e) and not isinstance(e, TrackingUnavailable):
                reason = unavailable(self._tracker.tracking_uri, e)
                trial.set_user_attr(records.FAIL_REASON, f"not recorded in MLflow: {reason}")
                raise TrackingUnavailable(reason) from e
            raise
        finally:
            keras.backend.clear_session()  # also runs the garbage collector
            trial.set_user_attr(records.RSS_MB, round(self._memory.after_trial(), 1))
        self.current = None
        return value

    def _run(
        self, trial: optuna.Trial, recorder: EpochRecorder, resume: Resume | None
    ) -> float | tuple[float, ...]:
        try:
            params = self.begin(trial)
            return self._train(trial, params, self._run_id, recorder, resume)
        except optuna.TrialPruned:
            reason = f"pruned at epoch {len(recorder.history)}"
            self._finish(trial, self._run_id, "pruned", recorder, reason)
            raise
        except TrialFailed as e:
            self._finish(trial, self._run_id, "failed", recorder, str(e))
            raise
        except KeyboardInterrupt:
            self.record_interrupt(trial, recorder)
            raise
        except BaseException as e:
            if tracking_down(e):
                raise
            reason = f"error: {type(e).__name__}: {e}"
            self._finish(trial, self._run_id, "failed", recorder, reason)
            raise

    def begin(
        self, trial: optuna.Trial, tags: Mapping[str, str] | None = None
    ) -> hparams.TrialParams:
        """Draw `trial`'s configuration from the space and open its MLflow run (its id
        in `run_id`); returns the configuration, parsed once for everything below."""
        if not self.config.search_engine.own_loop:  # KerasTuner counts its own trials
            refuse_surplus(trial, self.config.n_trials)
        hp = OptunaHP(trial, self._space.name)
        self._space.run(hp, self._data.info)
        self._run_id = self._tracker.start_trial(
            trial.number,
            hp.values,
            device=self._device,
            tags={**origin_tags(trial), **(tags or {})},
        )
        trial.set_user_attr(records.MLFLOW_RUN_ID, self._run_id)
        trial.set_user_attr(records.DEVICE, self._device)
        trial.set_user_attr(records.GPU, os.environ.get("CUDA_VISIBLE_DEVICES", "-1"))
        trial.set_user_attr(records.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr(records.WORKER_STARTED, round(self.process_started, 3))
        return hparams.TrialParams(hp.values, max_seq_len=self._data.info.max_seq_len)

    @property
    def run_id(self) -> str:
        """The MLflow run of the trial `begin` opened last."""
        return self._run_id

    @property
    def tracker(self) -> Tracker:
        return self._tracker

    @property
    def data(self) -> Dataset:
        return self._data

    @property
    def config(self) -> TuneConfig:
        return self._config

    def parts(self) -> list[tuple[Dataset, WindowCache]]:
        """What a configuration is scored on: the cross-validation folds, or the
        dataset's own validation split."""
        return self._folds or [(self._data, self.windows)]

    def record_interrupt(self, trial: optuna.Trial, recorder: EpochRecorder | None = None) -> None:
        """Record the trial as failed with reason "interrupted" and its MLflow run as KILLED."""
        self._finish(
            trial, self._run_id, "failed", recorder or EpochRecorder(), "interrupted",
            status="KILLED",
        )  # fmt: skip

    def _log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        # Curves under `epoch/`, epochs from 1: step 0 and the plain names hold the
        # trial's reported result alone (what the logged model's metrics are).
        self._tracker.log_metrics(
            self._run_id,
            {f"{EPOCH_PREFIX}{k}": v for k, v in logs.items()},
            step=self._epoch_offset + epoch + 1,
            buffered=True,
        )
        if self.progress is not None and self.current is not None:
            self.progress.epoch(self.current.number, epoch, self._config.max_epochs, logs)

    def _left(self) -> float | None:
        """Seconds until the study's --timeout ends (None: no timeout)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    def _train(
        self,
        trial: optuna.Trial,
        params: hparams.TrialParams,
        run_id: str,
        recorder: EpochRecorder,
        resume: Resume | None,
    ) -> float | tuple[float, ...]:
        info = self._data.info
        seq_len = params.window
        settings = FitSettings(
            max_epochs=self._config.max_epochs,
            patience=self._config.patience,
            seed=self._config.seed + trial.number,
            seconds=fit_seconds(
                self._config.timeout,
                folds=len(self._folds),
                left=self._left(),
                portfolio=records.PORTFOLIO in trial.user_attrs,
            ),
        )
        monitor, factor = objective_monitor(info)
        pruning = RoundPruning(trial, monitor, factor=factor)
        started = time.perf_counter()
        if self._folds:
            scored = self._cross_validate(params, seq_len, settings, recorder, pruning)
        else:
            result = fit_trial(
                params, self.windows.get(seq_len), self._data, settings,
                recorder=recorder, pruning=pruning, resume=resume, init=self._init,
            )  # fmt: skip
            self._record_transfer(trial, run_id, result.transfer)
            scored = Scored(result.val_metrics, result.best_epoch, result.stop_reason, result.model)
        # Training and validation alone; the rest of the trial's wall time is the tuner's.
        return self.record(
            trial, params, run_id, recorder, scored, train_s=time.perf_counter() - started
        )

    def record(
        self,
        trial: optuna.Trial,
        params: hparams.TrialParams,
        run_id: str,
        recorder: EpochRecorder,
        scored: Scored,
        *,
        train_s: float,
    ) -> float | tuple[float, ...]:
        """Record a trained trial (Optuna attributes, MLflow metrics, the champion's
        model, a kept ensemble member) and close its run; returns its value."""
        info = self._data.info
        seq_len = params.window
        trial.set_user_attr(records.TRAIN_S, round(train_s, 3))
        value = scored.val_metrics[info.metric]
        trial.set_user_attr(records.VAL_METRICS, scored.val_metrics)
        trial.set_user_attr(records.BEST_EPOCH, scored.best_epoch)
        trial.set_user_attr(ROUNDS_ATTR, ROUND_TARGETS)
        metrics = {f"val_{k}": v for k, v in scored.val_metrics.items()}
        for i, fold in enumerate(scored.fold_metrics):
            metrics |= {f"fold{i}_val_{k}": v for k, v in fold.items()}
        if scored.fold_metrics:
            trial.set_user_attr(records.FOLD_VALUES, [m[info.metric] for m in scored.fold_metrics])
        self._tracker.log_metrics(run_id, metrics)  # before the model: it takes step 0's
        x = self.windows.get(seq_len)["val"].x
        standing = self._measures.take(trial, run_id, params, scored.model, x, value)
        if leads(trial.study, standing):  # the new champion
            self._record_champion(trial, params, run_id, seq_len, scored)
        elif self._config.multi_objective and standing.feasible:  # may be on the front
            self._record_champion(trial, params, run_id, seq_len, scored, register=False)
        self._keep_member(trial, run_id, scored.model, rank_of(trial.study, value))
        self._finish(trial, run_id, "complete", recorder, scored.stop_reason)
        del scored
        return self._measures.told(standing)

    def _cross_validate(
        self,
        params: hparams.TrialParams,
        seq_len: int,
        settings: FitSettings,
        recorder: EpochRecorder,
        pruning: RoundPruning,
    ) -> Scored:
        """Train the configuration on every fold; its value is the mean over folds.
        Each fold reports to the pruner after the earlier folds' steps, so a trial can
        be pruned inside any fold against the other trials' same fold."""
        folds: list[dict[str, float]] = []
        best_epochs: list[int] = []
        for i, (fold, windows) in enumerate(self._folds):
            pruning.step_offset = i * self._config.max_epochs
            self._epoch_offset = len(recorder.history)
            result = fit_trial(
                params, windows.get(seq_len), fold, settings,
                recorder=recorder, pruning=pruning, init=self._init,
            )  # fmt: skip
            if i == 0:
                self._record_transfer(self.current, self._run_id, result.transfer)
            folds.append(result.val_metrics)
            best_epochs.append(result.best_epoch)
            del result
            keras.backend.clear_session()
        self._epoch_offset = 0
        mean = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
        best_epoch = max(1, round(float(np.mean(best_epochs))))
        return Scored(mean, best_epoch, f"cross-validated ({len(folds)} folds)", None, folds)

    def _keep_member(
        self, trial: optuna.Trial, run_id: str, model: keras.Model | None, rank: int
    ) -> None:
        """Under `--ensemble K`: a trial among the K best so far keeps its trained model
        in its MLflow run (`ensemble_member/model.keras`), so the ensemble reads it
        instead of training the configuration again. Not under cross-validation,
        where the ensemble needs each member's fold models."""
        size = self._config.ensemble or 0
        if size < 2 or model is None or rank >= size:
            return
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / MODEL_FILE)
            self._tracker.log_artifacts(run_id, Path(tmp), MEMBER_ARTIFACT)
        trial.set_user_attr(records.MEMBER_URI, f"runs:/{run_id}/{MEMBER_ARTIFACT}")

    def kept_member(self, trial: FrozenTrial) -> keras.Model | None:
        """The trained model a trial kept for the ensemble, or None when it kept none
        or its artifact can no longer be read (the member is then trained again)."""
        uri = trial.user_attrs.get(records.MEMBER_URI)
        if not uri:
            return None
        try:
            return load_logged_model(uri, self._tracker.tracking_uri)
        except (MlflowException, InputError, OSError):
            return None

    def _record_transfer(
        self, trial: optuna.Trial | None, run_id: str, moved: Transfer | None
    ) -> None:
        """Where a trial started from, under --init-from: fine-tuned or from scratch."""
        if trial is None or moved is None or self._init is None:
            return
        text = moved.describe(self._init.source)
        trial.set_user_attr(INIT_FROM, text)
        self._tracker.set_tags(run_id, {INIT_FROM: text})

    def _record_champion(
        self,
        trial: optuna.Trial,
        params: hparams.TrialParams,
        run_id: str,
        seq_len: int,
        scored: Scored,
        *,
        register: bool = True,
    ) -> None:
        """Log and register a new best trial's model (under cross-validation, its
        configuration refit on all non-test data for the folds' mean best epoch).
        The test split waits for `finalize`: only the study's final best sees it."""
        windows = self.windows.get(seq_len)
        model = scored.model or refit(
            params,
            windows,
            self._data,
            epochs=scored.best_epoch,
            seed=self._config.seed + trial.number,
        )
        value = scored.val_metrics[self._data.info.metric]
        what = f"trial {trial.number}"
        model_uri = self.log_model(
            run_id, model, seq_len, what=what, value=value, register=register
        )
        trial.set_user_attr(records.MODEL_URI, model_uri)

    def finalize(self, study: optuna.Study) -> None:
        """`finalize` (tuner.engine.measuring): the champion's test score, once."""
        finalize(study, self._tracker, self._config, self._data, self.windows)

    def log_model(
        self,
        run_id: str,
        model: keras.Model,
        seq_len: int,
        *,
        what: str,
        value: float,
        register: bool = True,
    ) -> str:
        """Log and register `model` as it is served: in the data's units, reading raw
        requests (a validation-part request as the example); the registered version
        says what it is (`what`), its validation objective and the data it was tuned on."""
        prep = self._data.preprocessing() | {"seq_len": seq_len}
        info = self._data.info
        metric = f"val_{info.metric}"
        sha256 = self._data.fingerprint["sha256"]
        return self._tracker.log_champion(
            run_id,
            in_data_units(model, prep),
            prep,
            example=request_example(self._data, seq_len),
            registered_name=self._config.study_name if register else None,
            force=self._config.pick is not None,  # the champion: not always the lowest value
            description=(
                f"{what} of study {self._config.study_name}: {metric} {value:.6g} on "
                f"{self._data.spec.name} (sha256 {sha256[:12]}); inputs and outputs in "
                "the data's own units."
            ),
            tags={
                "study": self._config.study_name,
                "source": what,
                metric: f"{value:.6g}",
                OBJECTIVE_TAG: repr(value),
                "dataset": self._data.spec.name,
                "dataset_sha256": sha256,
            },
        )

    def finish(
        self, trial: optuna.Trial, run_id: str, state: str, recorder: EpochRecorder, reason: str
    ) -> None:
        """Record why a trial that is not complete ended (`pruned`, `failed`) and close
        its MLflow run."""
        self._finish(trial, run_id, state, recorder, reason)

    def _finish(
        self,
        trial: optuna.Trial,
        run_id: str,
        state: str,
        recorder: EpochRecorder,
        reason: str,
        *,
        status: str | None = None,
    ) -> None:
        epochs = len(recorder.history)
        trial.set_user_attr(records.EPOCHS_RUN, epochs)
        trial.set_user_attr(
            records.STOP_REASON if state != "failed" else records.FAIL_REASON, reason
        )
        if not run_id:  # stopped before its MLflow run was created
            return
        self._tracker.set_tags(
            run_id, {"state": state, "stop_reason": reason, "stopped_epoch": epochs}
        )
        self._tracker.end(run_id, status or ("FAILED" if state == "failed" else "FINISHED"))


@dataclass
class Scored:
    """A trained configuration's validation result (the mean over folds under CV)."""

    val_metrics: dict[str, float]
    best_epoch: int
    stop_reason: str
    model: keras.Model | None  # None under CV: the champion is refit when needed
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
