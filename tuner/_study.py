"""The study runner: create or resume an Optuna study and run its trials.

Flow: data -> windows -> model -> trial -> study -> tracking. `run_tune` runs in
the invoking process: it checks every input, opens the study and the parent
MLflow run, then hands the trials to worker processes (`tuner._worker`), one
after another, each replaced after a fixed number of trials.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import warnings
from typing import Any

import optuna

from tuner._config import TuneConfig
from tuner._console import err
from tuner._data import SeriesData, load_series, resolve_dataset
from tuner._errors import InputError
from tuner._metrics import baselines
from tuner._plots import log_study_plots
from tuner._space import SearchSpace, load_space, probe_space
from tuner._storage import open_storage
from tuner._summary import summarize, trial_rows
from tuner._tracking import Tracker, mask_secrets, resolve_tracking_uri
from tuner._worker import DONE_STATES, WorkerJob, WorkerResult, worker_main

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
TRIALS_PER_PROCESS = 10


def run_tune(config: TuneConfig, *, trials_per_process: int = TRIALS_PER_PROCESS) -> dict[str, Any]:
    """Create or resume the study, run the trials still missing, return the summary."""
    data, space = prepare_data(config)
    tracking_uri = resolve_tracking_uri(config.tracking)
    study = open_study(config, data, space)
    tracker = Tracker(tracking_uri, config.experiment or config.study_name)
    resolved = config.resolved() | {"space": str(space.path), "tracking_uri": tracking_uri}
    tracker.start_parent(
        f"{config.study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
        resolved,
        tags={"study": config.study_name, "role": "study"},
    )
    _log_dataset(tracker, study)
    job = WorkerJob(
        config=config,
        tracking_uri=tracking_uri,
        parent_run_id=tracker.parent_id,
        trials_per_process=trials_per_process,
        deadline=time.time() + config.timeout if config.timeout else None,
        failure_limit=config.trials,
    )
    status = "FAILED"
    try:
        _run_workers(study, job)
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


def prepare_data(config: TuneConfig) -> tuple[SeriesData, SearchSpace]:
    """Load the dataset and the search space and check the space against the data."""
    spec = resolve_dataset(config.dataset, target=config.target, horizon=config.horizon)
    data = load_series(spec)
    space = load_space(config.space or "default")
    probe_space(space, data.info)
    return data, space


def _run_workers(study: optuna.Study, job: WorkerJob) -> None:
    """Start worker processes one after another until the study has enough trials."""
    done = len(study.get_trials(deepcopy=False, states=DONE_STATES))
    if done >= job.config.trials:
        err.print(f"study {study.study_name} already has {done} finished trials; nothing to run.")
        return
    while True:
        result = _run_one_worker(job)
        if result.reason == "input_error":
            raise InputError(result.message)
        if result.reason == "crash":
            raise RuntimeError(f"a worker process failed:\n{result.message}")
        if result.reason == "interrupted":
            raise KeyboardInterrupt(result.message)
        if result.reason == "failures":
            err.print(f"stopping: {job.failure_limit} trials failed in a row; see their reasons.")
        if result.reason != "recycle":
            return


def _run_one_worker(job: WorkerJob) -> WorkerResult:
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=worker_main, args=(job, sender), name="tuner-worker")
    process.start()
    sender.close()
    try:
        process.join()
    except KeyboardInterrupt as e:
        _forward_and_wait(process, str(e) or "SIGINT")
        raise
    if not receiver.poll():
        raise RuntimeError(f"worker process ended with exit code {process.exitcode} and no result")
    result: WorkerResult = receiver.recv()
    return result


def _forward_and_wait(process: Any, signame: str) -> None:
    """Pass the interrupt on to the worker and let it record its running trial."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if process.is_alive():
            os.kill(process.pid, signal.Signals[signame])
        process.join(timeout=120)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def open_study(config: TuneConfig, data: SeriesData, space: SearchSpace) -> optuna.Study:
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
