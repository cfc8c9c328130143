"""Train one trial: fit with early stopping and pruning, score on validation.

Keras 3 APIs only, so the same code runs under the TensorFlow, JAX or PyTorch
backend. Every batch a model sees has one of as few shapes as possible: under
JAX each new batch shape compiles the step anew (0.3-0.7 s for a small LSTM on
this machine, more than its epochs on a small dataset). Training batches are
all full (the short remainder is left out, a different one each epoch),
validation runs as one batch where it fits, and predictions pad their last
batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import optuna

from tuner.data.spec import Dataset, Windows
from tuner.devices import device_memory_mb
from tuner.errors import TrialFailed
from tuner.model import params as hparams
from tuner.model.batches import (
    Batches,
    TrainBatches,
    predict_windows,
    round_passes,
    validation_batch_size,
)
from tuner.model.build import build_model, compile_args, make_optimizer
from tuner.model.size import largest_model
from tuner.model.stop import STOP
from tuner.model.transfer import Pretrained, Transfer, set_recurrent_trainable, transfer

EpochSink = Callable[[int, dict[str, float]], None]
_OOM_NAMES = ("ResourceExhausted", "OutOfMemory")  # TensorFlow's, PyTorch's
_OOM_STATUS = "RESOURCE_EXHAUSTED"  # JAX raises a JaxRuntimeError with this status


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    """How long and how a trial trains: rounds, patience, seed, time limit."""

    max_epochs: int  # rounds
    patience: int  # rounds
    seed: int
    seconds: float | None = None  # stop at the end of the round in which this ran out


class RoundPruning(keras.callbacks.Callback):
    """Report `monitor` (times `factor`, to put it in the objective's unit) to the
    Optuna trial at the end of every round (a Keras epoch) and prune when the pruner
    says so."""

    def __init__(self, trial: optuna.Trial, monitor: str, *, factor: float = 1.0) -> None:
        super().__init__()
        self._trial = trial
        self._monitor = monitor
        self._factor = factor
        self.step_offset = 0  # rounds of the earlier cross-validation folds

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        # Optuna takes no reports in a multi-objective study (--objectives): no pruning.
        if self._monitor not in (logs or {}) or len(self._trial.study.directions) > 1:
            return
        step = self.step_offset + epoch
        self._trial.report(float((logs or {})[self._monitor]) * self._factor, step)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {epoch + 1}")


@dataclass(frozen=True)
class Resume:
    """A model to train instead of a new one, from `initial_epoch`, with more callbacks."""

    model: keras.Model | None = None
    initial_epoch: int = 0
    epochs: int | None = None  # the epoch to stop after (default: the maximum)
    callbacks: tuple[keras.callbacks.Callback, ...] = ()


@dataclass
class FitResult:
    """A trained trial: its model, rounds run, best round, why it stopped, metrics."""

    model: keras.Model
    epochs_run: int
    best_epoch: int
    stop_reason: str
    val_metrics: dict[str, float]
    transfer: Transfer | None = None  # what it took from a pretrained model (--init-from)


class EpochRecorder(keras.callbacks.Callback):
    """Keeps every epoch's logs (also when fit is cut short) and forwards them."""

    def __init__(self, sink: EpochSink | None = None) -> None:
        super().__init__()
        self.history: list[dict[str, float]] = []
        self._sink = sink

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        row = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        self.history.append(row)
        if self._sink:
            self._sink(epoch, row)


class StopOnRequest(keras.callbacks.Callback):
    """Raise `KeyboardInterrupt` at the end of the batch during which a signal asked
    the process to stop (`tuner.model.stop`).

    Safe for Keras' asynchronous dispatch: its check runs beside the training
    loop, which then raises it at the next batch. A callback with batch hooks that
    is not marks every batch synchronous: the loop waits for each step's logs
    before it feeds the next batch.
    """

    async_safe = True

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        STOP.check()

    def on_test_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        STOP.check()


class TimeLimit(keras.callbacks.Callback):
    """Stop training at the end of the round during which `seconds` ran out (counted
    from its creation: a frozen phase and the training after it share them); early
    stopping then restores the best round's weights, and the trial is scored as usual."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds
        self._started = time.perf_counter()
        self.reached = False

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if time.perf_counter() - self._started > self._seconds:
            self.reached = True
            self.model.stop_training = True


class NonFiniteGuard(keras.callbacks.Callback):
    """Fail the trial as soon as the loss is NaN or infinite."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        for key in ("loss", "val_loss"):
            value = float((logs or {}).get(key, 0.0))
            if not math.isfinite(value):
                raise TrialFailed(f"{key} became {value} at epoch {epoch + 1} (diverged)")


@dataclass
class _Callbacks:
    recorder: EpochRecorder
    early: keras.callbacks.EarlyStopping
    extra: list[keras.callbacks.Callback] = field(default_factory=list)
    time_limit: TimeLimit | None = None

    def stop_reason(self) -> str:
        if self.time_limit is not None and self.time_limit.reached:
            return "time_limit"
        return "early_stopping" if self.early.stopped_epoch > 0 else "max_epochs"

    def best_epoch(self, rounds_run: int) -> int:
        """The round whose weights the model holds (from 1): early stopping's best, or
        the last round where training ended before its first monitored round."""
        return self.early.best_epoch + 1 if self.early.best_weights is not None else rounds_run

    def as_list(self, *, early: bool = True) -> list[keras.callbacks.Callback]:
        """All callbacks; without early stopping (and the rest) for a frozen phase."""
        if not early:
            limit = [self.time_limit] if self.time_limit else []
            return [self.recorder, NonFiniteGuard(), StopOnRequest(), *limit]
        return [self.recorder, NonFiniteGuard(), StopOnRequest(), self.early, *self.extra]


def fit_trial(
    params: Mapping[str, Any],
    windows: Mapping[str, Windows],
    data: Dataset,
    settings: FitSettings,
    *,
    recorder: EpochRecorder,
    pruning: RoundPruning | None = None,
    resume: Resume | None = None,
    init: Pretrained | None = None,
) -> FitResult:
    """Build, train and validate one configuration; raises TrialFailed or TrialPruned.

    Epochs are rounds (see ROUND_TARGETS): on a small training set each is several
    shuffled passes. `resume` hands in a model built elsewhere (KerasTuner's
    Hyperband continues a model from an earlier round) with the round to start
    from and extra callbacks. `init` is a pretrained model whose matching layers
    the new model starts from; with `freeze_recurrent_epochs` its recurrent layers
    stay frozen that many rounds.
    """
    keras.utils.set_random_seed(settings.seed)
    params = hparams.TrialParams.of(params, max_seq_len=data.info.max_seq_len)
    train, val, batch_size = windows["train"], windows["val"], params.batch_size
    resume = resume or Resume()
    callbacks = _make_callbacks(params, settings, recorder, pruning)
    feed = {
        "x": TrainBatches(
            train, batch_size, seed=settings.seed, passes=round_passes(train, batch_size)
        ),
        "validation_data": Batches(val, validation_batch_size(val, batch_size)),
        "verbose": 0,
    }
    moved = None
    if resume.model is None:
        _check_fits(params, data)
    try:
        model = resume.model or compiled(params, data, train=train, epochs=settings.max_epochs)
        start = resume.initial_epoch
        if init is not None and resume.model is None:
            moved = transfer(model, init)
            start = _frozen_start(model, params, data, moved, feed, callbacks, settings)
        model.fit(
            **feed,
            epochs=resume.epochs or settings.max_epochs,
            initial_epoch=start,
            callbacks=[*callbacks.as_list(), *resume.callbacks],
        )
        val_metrics = evaluate(model, val, data, batch_size=batch_size)
    except Exception as e:
        if (failed := out_of_memory(e)) is None:
            raise
        raise failed from e
    return FitResult(
        model=model,
        epochs_run=len(recorder.history),
        best_epoch=callbacks.best_epoch(len(recorder.history)),
        stop_reason=callbacks.stop_reason(),
        val_metrics=val_metrics,
        transfer=moved,
    )


def out_of_memory(error: Exception) -> TrialFailed | None:
    """A trial that ran out of memory (host or device, any backend's words) fails alone."""
    if isinstance(error, MemoryError):
        return TrialFailed(f"out of memory: {error}")
    if any(name in type(error).__name__ for name in _OOM_NAMES) or _OOM_STATUS in str(error):
        return TrialFailed(f"out of memory: {type(error).__name__}")
    return None


def _check_fits(params: Mapping[str, Any], data: Dataset) -> None:
    """Fail a trial whose model needs more memory to train than this process's device
    has at all, before building it: where the kernel overcommits memory, the backend's
    allocation would succeed and the kernel's out-of-memory killer end the worker
    (again on every retry) instead of the backend raising an error the trial reports."""
    size = largest_model({name: [value] for name, value in params.items()}, data.info)
    memory = device_memory_mb()
    if memory is not None and size.training_mb > memory:
        raise TrialFailed(
            f"out of memory: {size.summary} needs about {size.training_mb / 1024:,.1f} GB "
            f"to train, more than the {memory / 1024:,.1f} GB of this device"
        )


def _frozen_start(
    model: keras.Model,
    params: hparams.TrialParams,
    data: Dataset,
    moved: Transfer,
    feed: dict[str, Any],
    callbacks: _Callbacks,
    settings: FitSettings,
) -> int:
    """Train a fine-tuned model's other layers with its recurrent layers frozen for
    `frozen` epochs (`freeze_recurrent_epochs` rounds; Keras fixes what trains when it
    compiles, so each phase compiles); returns the epoch the full training starts from."""
    frozen = min(int(params["freeze_recurrent_epochs"]), settings.max_epochs - 1)
    if not moved.fine_tuned or frozen <= 0:
        return 0
    train = feed["x"].split
    set_recurrent_trainable(model, False)
    _compile(model, params, data, train=train, epochs=frozen)
    model.fit(**feed, epochs=frozen, callbacks=callbacks.as_list(early=False))
    set_recurrent_trainable(model, True)
    _compile(model, params, data, train=train, epochs=settings.max_epochs - frozen)
    return frozen


def refit(
    params: Mapping[str, Any],
    windows: Mapping[str, Windows],
    data: Dataset,
    *,
    epochs: int,
    seed: int,
    in_rounds: bool = True,
) -> keras.Model:
    """Train the configuration on train plus validation for a fixed number of rounds
    (the best round of its trial): no early stopping, nothing held out to choose by.
    `in_rounds=False`: `epochs` are single passes (a trial recorded before rounds)."""
    keras.utils.set_random_seed(seed)
    both = Windows(
        x=np.concatenate([windows["train"].x, windows["val"].x]),
        y=np.concatenate([windows["train"].y, windows["val"].y]),
    )
    params = hparams.TrialParams.of(params, max_seq_len=data.info.max_seq_len)
    batch_size = params.batch_size
    model = compiled(params, data, train=both, epochs=epochs)
    passes = round_passes(both, batch_size) if in_rounds else 1
    model.fit(TrainBatches(both, batch_size, seed=seed, passes=passes), epochs=epochs, verbose=0)
    return model


def compiled(
    params: Mapping[str, Any], data: Dataset, *, train: Windows, epochs: int
) -> keras.Model:
    """The task's model for `params`, compiled with its optimizer, loss and metrics
    (the `train` windows' rounds, `epochs` of them, set the schedule's length)."""
    params = hparams.TrialParams.of(params, max_seq_len=data.info.max_seq_len)
    model = build_model(params, data.info)
    _compile(model, params, data, train=train, epochs=epochs)
    return model


def _compile(
    model: keras.Model,
    params: hparams.TrialParams,
    data: Dataset,
    *,
    train: Windows,
    epochs: int,
) -> None:
    batch_size = params.batch_size
    steps = round_passes(train, batch_size) * TrainBatches.count(len(train.x), batch_size)
    optimizer = make_optimizer(params, steps_per_epoch=steps, epochs=epochs)
    model.compile(optimizer=optimizer, **compile_args(data.info))


def evaluate(
    model: keras.Model, split: Windows, data: Dataset, *, batch_size: int
) -> dict[str, float]:
    """The task's metrics of a trained model on one split's windows."""
    pred = predict_windows(model, split, batch_size=batch_size)
    if not np.all(np.isfinite(pred)):
        raise TrialFailed("the model predicts NaN or infinite values")
    return data.metrics(split.y, pred)


def _make_callbacks(
    params: hparams.TrialParams,
    settings: FitSettings,
    recorder: EpochRecorder,
    pruning: RoundPruning | None,
) -> _Callbacks:
    # No stop, and no best round, before the family's share of the rounds (the share no
    # pruner may cut either): on a validation split of 20 sequences a convolutional
    # branch's second round can score best by chance and stop the trial at its sixth.
    early = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=settings.patience,
        restore_best_weights=True,
        start_from_epoch=params.min_rounds(settings.max_epochs) - 1,
    )
    extra: list[keras.callbacks.Callback] = []
    if params.lr_schedule == "plateau":
        extra.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=max(1, settings.patience // 2)
            )
        )
    if pruning is not None:
        extra.append(pruning)
    limit = TimeLimit(settings.seconds) if settings.seconds else None
    if limit is not None:
        extra.append(limit)  # after early stopping: the last round counts for the best
    return _Callbacks(recorder=recorder, early=early, extra=extra, time_limit=limit)
