"""The objective: train one trial and record it (Optuna state, MLflow child run,
champion model). Runs inside a worker process; this is where Keras is imported.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import keras
import optuna
from optuna_integration import KerasPruningCallback

from tuner._config import TuneConfig
from tuner._data import SeriesData
from tuner._errors import TrialFailed
from tuner._space import OptunaHP, SearchSpace
from tuner._summary import completed
from tuner._tracking import Tracker
from tuner._trial import EpochRecorder, FitSettings, evaluate, fit_trial
from tuner._windows import WindowCache


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Objective:
    """Train one trial and record it: Optuna state, MLflow child run, champion model."""

    def __init__(
        self, *, space: SearchSpace, data: SeriesData, config: TuneConfig, tracker: Tracker
    ) -> None:
        self._space = space
        self._data = data
        self._config = config
        self._tracker = tracker
        self._windows = WindowCache(data)

    def __call__(self, trial: optuna.Trial) -> float:
        hp = OptunaHP(trial, self._space.name)
        self._space.fn(hp, self._data.info)
        params = hp.values
        run_id = self._tracker.start_trial(trial.number, params)
        recorder = EpochRecorder(lambda e, logs: self._tracker.log_metrics(run_id, logs, step=e))
        try:
            value = self._train(trial, params, run_id, recorder)
        except optuna.TrialPruned:
            self._finish(
                trial, run_id, "pruned", recorder, f"pruned at epoch {len(recorder.history)}"
            )
            raise
        except TrialFailed as e:
            self._finish(trial, run_id, "failed", recorder, str(e))
            raise
        except KeyboardInterrupt:
            self._finish(trial, run_id, "failed", recorder, "interrupted", status="KILLED")
            raise
        except BaseException as e:
            self._finish(trial, run_id, "failed", recorder, f"error: {type(e).__name__}: {e}")
            raise
        finally:
            keras.backend.clear_session()
            gc.collect()
            trial.set_user_attr("rss_mb", round(rss_mb(), 1))
        return value

    def _train(
        self, trial: optuna.Trial, params: dict[str, Any], run_id: str, recorder: EpochRecorder
    ) -> float:
        windows = self._windows.get(int(params["seq_len"]))
        settings = FitSettings(
            max_epochs=self._config.max_epochs,
            patience=self._config.patience,
            seed=self._config.seed + trial.number,
        )
        pruning = KerasPruningCallback(trial, "val_loss")
        result = fit_trial(
            params, windows, self._data, settings, recorder=recorder, pruning=pruning
        )
        value = result.val_metrics["mse"]
        trial.set_user_attr("val_metrics", result.val_metrics)
        trial.set_user_attr("best_epoch", result.best_epoch)
        metrics = {f"val_{k}": v for k, v in result.val_metrics.items()}
        if _is_new_best(trial, value):
            test = evaluate(result.model, windows["test"], self._data)
            trial.set_user_attr("test_metrics", test)
            metrics |= {f"test_{k}": v for k, v in test.items()}
            self._tracker.log_champion(
                run_id, result.model, windows["val"].x[:2], registered_name=self._config.study_name
            )
        self._tracker.log_metrics(run_id, metrics)
        self._finish(trial, run_id, "complete", recorder, result.stop_reason)
        del result
        return value

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
        trial.set_user_attr("epochs_run", epochs)
        trial.set_user_attr("stop_reason" if state != "failed" else "fail_reason", reason)
        self._tracker.set_tags(
            run_id, {"state": state, "stop_reason": reason, "stopped_epoch": epochs}
        )
        self._tracker.end(run_id, status or ("FAILED" if state == "failed" else "FINISHED"))


def _is_new_best(trial: optuna.Trial, value: float) -> bool:
    others = [t.value for t in completed(trial.study) if t.value is not None]
    return not others or value < min(others)
