"""The study runner: create or resume an Optuna study and run trials.

Flow: data -> windows -> model -> trial -> study -> tracking. `run_tune` is the
public entry; the objective below trains one trial and records it.
"""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras
import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import KerasPruningCallback

from tuner._config import TuneConfig
from tuner._console import TrialProgress, err
from tuner._data import SeriesData, load_series, resolve_dataset
from tuner._errors import InputError, TrialFailed
from tuner._metrics import baselines
from tuner._plots import log_study_plots
from tuner._space import OptunaHP, SearchSpace, load_space, probe_space
from tuner._storage import open_storage
from tuner._summary import completed, summarize, trial_rows
from tuner._tracking import Tracker, mask_secrets, resolve_tracking_uri
from tuner._trial import EpochRecorder, FitSettings, evaluate, fit_trial
from tuner._windows import WindowCache

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def run_tune(
    config: TuneConfig, *, callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()
) -> dict[str, Any]:
    """Create or resume the study, run the trials still missing, return the summary.

    `callbacks` are extra Optuna callbacks, called after every trial.
    """
    spec = resolve_dataset(config.dataset, target=config.target, horizon=config.horizon)
    data = load_series(spec)
    space = load_space(config.space or "default")
    probe_space(space, data.info)
    tracking_uri = resolve_tracking_uri(config.tracking)
    study = _open_study(config, data, space)
    tracker = Tracker(tracking_uri, config.experiment or config.study_name)
    resolved = config.resolved() | {"space": str(space.path), "tracking_uri": tracking_uri}
    tracker.start_parent(
        f"{config.study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
        resolved,
        tags={"study": config.study_name, "role": "study"},
    )
    _log_dataset(tracker, study)
    status = "FAILED"
    try:
        _optimize(study, config, data, space, tracker, callbacks)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        summary = summarize(
            study, storage=mask_secrets(config.storage_url), tracking_uri=tracking_uri
        )
        _finish_parent(tracker, study, summary, status)
    return summary


def _open_study(config: TuneConfig, data: SeriesData, space: SearchSpace) -> optuna.Study:
    storage = open_storage(config.storage_url)
    n_before = _existing_trials(storage, config.study_name)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        direction="minimize",
        sampler=_sampler(config.sampler, config.seed + n_before),
        pruner=_pruner(config),
        load_if_exists=True,
    )
    _check_same_study(study, config, data, space)
    return study


def _existing_trials(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _check_same_study(
    study: optuna.Study, config: TuneConfig, data: SeriesData, space: SearchSpace
) -> None:
    """A resumed study must keep its data and space; a new one records them."""
    identity = {
        "dataset_sha256": data.fingerprint["sha256"],
        "horizon": data.spec.horizon,
        "targets": list(data.spec.target),
        "space": space.name,
    }
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
        study.set_user_attr("fingerprint", data.fingerprint)
        study.set_user_attr("baselines", baselines(data))
        return
    changed = {k: (stored.get(k), v) for k, v in identity.items() if stored.get(k) != v}
    if changed:
        key, (was, now) = next(iter(changed.items()))
        raise InputError(
            f"--study {config.study_name}: this study was created with {key}={was!r}, "
            f"but this run has {key}={now!r}; pass a new --study name to start another study."
        )


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    # The seed moves on with the number of trials already run, so a resumed
    # study does not draw its first configurations again.
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=8, multivariate=True, group=True, constant_liar=True
    )


def _pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(
        min_resource=2, max_resource=config.max_epochs, reduction_factor=3
    )


def _optimize(
    study: optuna.Study,
    config: TuneConfig,
    data: SeriesData,
    space: SearchSpace,
    tracker: Tracker,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]],
) -> None:
    done = len(study.get_trials(deepcopy=False, states=_DONE))
    if done >= config.trials:
        err.print(f"study {config.study_name} already has {done} finished trials; nothing to run.")
        return
    objective = Objective(space=space, data=data, config=config, tracker=tracker)
    with TrialProgress(config.trials, done) as progress:
        study.optimize(
            objective,
            timeout=config.timeout,
            catch=(TrialFailed,),
            callbacks=[
                MaxTrialsCallback(config.trials, states=_DONE),
                _FailureBudget(config.trials),
                progress,
                *callbacks,
            ],
            gc_after_trial=False,
        )


class _FailureBudget:
    """Stop a study whose trials keep failing instead of looping for ever."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._failed = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._failed += trial.state == TrialState.FAIL
        if self._failed >= self._limit:
            err.print(f"stopping: {self._failed} trials failed in this run; see their reasons.")
            study.stop()


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


def _log_dataset(tracker: Tracker, study: optuna.Study) -> None:
    fingerprint = study.user_attrs["fingerprint"]
    tracker.log_params(tracker.parent_id, {"dataset": fingerprint})
    tracker.log_dict(tracker.parent_id, fingerprint, "dataset_fingerprint.json")
    for name, metrics in study.user_attrs["baselines"].items():
        tracker.log_metrics(
            tracker.parent_id, {f"baseline_{name}_{k}": v for k, v in metrics.items()}
        )


def _finish_parent(
    tracker: Tracker, study: optuna.Study, summary: dict[str, Any], status: str
) -> None:
    best = {f"best_val_{k}": v for k, v in (summary["best_val"] or {}).items()}
    best |= {f"best_test_{k}": v for k, v in (summary["best_test"] or {}).items()}
    tracker.log_metrics(tracker.parent_id, best)
    tracker.set_tags(
        tracker.parent_id,
        {
            "best_trial": summary["best_trial"],
            "n_complete": summary["n_complete"],
            "n_pruned": summary["n_pruned"],
            "n_failed": summary["n_failed"],
        },
    )
    tracker.log_dict(tracker.parent_id, summary, "summary.json")
    tracker.log_dict(tracker.parent_id, trial_rows(study), "trials.json")
    log_study_plots(tracker, study)
    tracker.end(tracker.parent_id, status)
