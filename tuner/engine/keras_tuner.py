"""The keras-tuner engine: KerasTuner's Hyperband, BayesianOptimization or
RandomSearch searching the same search-space module, recorded like the Optuna engine.

KerasTuner chooses the configurations (and, for Hyperband, how many epochs each
gets and which models continue); every trial it runs is mirrored into the
Optuna study (its values enqueued, then asked and told), so training, the
MLflow layout, `tuner status|best|export` and the study plots are the ones of
the Optuna engine. Batch size and window length are ordinary space parameters:
`HyperModel.fit` picks the windows and the batch size from them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import optuna
from optuna.trial import TrialState

from tuner.data.spec import Dataset
from tuner.engine.objective import Objective
from tuner.errors import TrialFailed
from tuner.model import params as hparams
from tuner.model.train import Resume, compiled
from tuner.report.console import TrialProgress
from tuner.space import SearchSpace
from tuner.study.summary import epochs_spent, finished


class RecordingHP:
    """Forwards the space's `hp` calls to KerasTuner's `HyperParameters` and keeps
    the values this build actually used (KerasTuner also holds inactive ones)."""

    def __init__(self, hp: kt.HyperParameters) -> None:
        self._hp = hp
        self.values: dict[str, Any] = {}

    def _keep(self, name: str, value: Any) -> Any:
        if value is not None:
            self.values[name] = value
        return value

    def Int(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._keep(name, self._hp.Int(name, *args, **kwargs))

    def Float(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._keep(name, self._hp.Float(name, *args, **kwargs))

    def Choice(self, name: str, values: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        return self._keep(name, self._hp.Choice(name, list(values), *args, **kwargs))

    def Boolean(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._keep(name, self._hp.Boolean(name, *args, **kwargs))

    def Fixed(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        return self._keep(name, self._hp.Fixed(name, value, *args, **kwargs))

    @contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Sequence[Any]) -> Iterator[None]:
        with self._hp.conditional_scope(parent_name, list(parent_values)):
            yield

    def get(self, name: str) -> Any:
        return self._hp.get(name)


class SpaceHyperModel(kt.HyperModel):
    """Builds the task's model from the space; `fit` runs it as one recorded trial."""

    def __init__(self, engine: KerasTunerEngine) -> None:
        super().__init__(name=engine.space.name)
        self._engine = engine

    def params(self, hp: kt.HyperParameters) -> dict[str, Any]:
        recording = RecordingHP(hp)
        self._engine.space.run(recording, self._engine.data.info)
        return recording.values

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        params = self.params(hp)
        data = self._engine.data
        seq_len = hparams.TrialParams.of(params, max_seq_len=data.info.max_seq_len).window
        train = self._engine.objective.windows.get(seq_len)["train"]
        return compiled(params, data, train=train, epochs=self._engine.config_max_epochs)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> float:
        resume = Resume(
            model=model,
            initial_epoch=int(kwargs.get("initial_epoch", 0)),
            epochs=int(kwargs.get("epochs") or self._engine.config_max_epochs),
            callbacks=tuple(kwargs.get("callbacks") or ()),
        )
        return self._engine.run_trial(self.params(hp), resume)


class KerasTunerEngine:
    """Runs one KerasTuner search in this worker, mirroring each trial into `study`."""

    def __init__(
        self,
        *,
        study: optuna.Study,
        objective: Objective,
        space: SearchSpace,
        data: Dataset,
        algorithm: str,
        max_epochs: int,
        trials: int,
        epoch_budget: int | None,
        seed: int,
        directory: Path,
    ) -> None:
        self.study = study
        self.objective = objective
        self.space = space
        self.data = data
        self.config_max_epochs = max_epochs
        self._trials = trials
        self._budget = epoch_budget
        self._progress: TrialProgress | None = None
        self._tuner = _make_tuner(
            algorithm,
            SpaceHyperModel(self),
            max_epochs=max_epochs,
            trials=trials,
            seed=seed,
            directory=directory,
            project=study.study_name,
        )
        self._tuner.pre_create_trial = self._stop_when_done
        # No TensorBoard callback is passed; KerasTuner would still import tensorboard.
        self._tuner._configure_tensorboard_dir = _no_tensorboard

    def search(self) -> None:
        with TrialProgress(self._trials, finished(self.study)) as progress:
            self._progress = progress
            self.objective.progress = progress
            if not self.done():
                self._tuner.search(verbose=0)

    def done(self) -> bool:
        if finished(self.study) >= self._trials:
            return True
        return self._budget is not None and epochs_spent(self.study) >= self._budget

    def run_trial(self, params: dict[str, Any], resume: Resume) -> float:
        """One KerasTuner trial as an Optuna trial: same training and records."""
        self.study.enqueue_trial(params, skip_if_exists=False)
        trial = self.study.ask()
        try:
            value = self.objective(trial, resume)
        except TrialFailed as e:
            self._tell(trial, TrialState.FAIL)
            raise kt.errors.FailedTrialError(str(e)) from e
        except optuna.TrialPruned:  # the mirrored study never prunes; kept for safety
            self._tell(trial, TrialState.PRUNED)
            raise kt.errors.FailedTrialError("pruned") from None
        except Exception:
            self._tell(trial, TrialState.FAIL)
            raise
        self._tell(trial, TrialState.COMPLETE, value)
        return value if isinstance(value, float) else value[0]  # the engine has no --objectives

    def _tell(
        self, trial: optuna.Trial, state: TrialState, value: float | tuple[float, ...] | None = None
    ) -> None:
        frozen = self.study.tell(trial, value, state=state)
        if self._progress is not None:
            self._progress(self.study, frozen)

    def _stop_when_done(self) -> None:
        """Called by KerasTuner before each new trial: enough trials or epochs -> stop."""
        if self.done():
            oracle = self._tuner.oracle
            oracle.max_trials = max(1, len(oracle.trials))


def _no_tensorboard(*args: Any, **kwargs: Any) -> None:
    return None


def _make_tuner(
    algorithm: str,
    hypermodel: kt.HyperModel,
    *,
    max_epochs: int,
    trials: int,
    seed: int,
    directory: Path,
    project: str,
) -> kt.Tuner:
    shutil.rmtree(directory / project, ignore_errors=True)  # KerasTuner's own checkpoints
    common: dict[str, Any] = {
        "hypermodel": hypermodel,
        "objective": kt.Objective("val_loss", direction="min"),
        "seed": seed,
        "directory": str(directory),
        "project_name": project,
        "overwrite": True,
        "max_consecutive_failed_trials": max(3, trials),
    }
    if algorithm == "hyperband":
        return kt.Hyperband(max_epochs=max_epochs, factor=3, hyperband_iterations=100, **common)
    if algorithm == "bayesian":
        return kt.BayesianOptimization(max_trials=trials, **common)
    return kt.RandomSearch(max_trials=trials, **common)
