"""The study runner: create or resume an Optuna study and run its trials.

Flow: data -> windows -> model -> trial -> study -> tracking. `run_tune` runs in
the invoking process: it checks every input, opens the study and the parent
MLflow run, then hands the trials to worker processes (`tuner._worker`), one
after another, each replaced after a fixed number of trials.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
import warnings
from multiprocessing.connection import Connection, wait
from typing import Any

import optuna

from tuner._config import TuneConfig
from tuner._console import err
from tuner._data import ENSEMBLE_TASKS, TASK_OBJECTIVES, Dataset, load_dataset, resolve_dataset
from tuner._devices import choose_gpus
from tuner._errors import InputError
from tuner._plots import log_study_plots
from tuner._space import SearchSpace, default_space, load_space, probe_space
from tuner._storage import open_storage
from tuner._summary import summarize, trial_rows
from tuner._tracking import Tracker, mask_secrets, resolve_tracking_uri
from tuner._worker import DONE_STATES, WorkerJob, WorkerResult, worker_main

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
TRIALS_PER_PROCESS = 10
_MAX_DEATHS = 5  # worker processes killed (SIGKILL, out of memory) before the run gives up


def run_tune(
    config: TuneConfig, *, role: str = "tune", trials_per_process: int = TRIALS_PER_PROCESS
) -> dict[str, Any]:
    """Create or resume the study, run the trials still missing, return the summary.

    `role` ("tune" or "worker") names the invocation in its parent MLflow run.
    """
    gpus = choose_gpus(config.gpus)
    n_workers = config.workers or max(1, len(gpus))
    if config.engine == "keras-tuner":  # one search, in one process, start to end
        n_workers, trials_per_process = 1, config.trials
    data, space = prepare_data(config)
    tracking_uri = resolve_tracking_uri(config.tracking)
    study = open_study(config, data, space, tracking_uri=tracking_uri)
    tracker = Tracker(tracking_uri, config.experiment or config.study_name)
    resolved = config.resolved() | {"space": str(space.path), "tracking_uri": tracking_uri}
    tracker.start_parent(
        f"{config.study_name}-{role}-{time.strftime('%Y%m%d-%H%M%S')}",
        resolved,
        tags={"study": config.study_name, "role": role},
    )
    _log_dataset(tracker, study)
    job = WorkerJob(
        config=config,
        tracking_uri=tracking_uri,
        parent_run_id=tracker.parent_id,
        trials_per_process=trials_per_process,
        deadline=time.time() + config.timeout if config.timeout else None,
        failure_limit=config.trials,
        threads=_threads_per_worker(n_workers),
        gpus=tuple(gpus),
        # Workers started at the same moment must not draw the same configurations;
        # separate `tuner worker` invocations differ by process id as well.
        seed_salt=0 if role == "tune" else 1000 * (os.getpid() % 100_000),
    )
    status = "FAILED"
    try:
        _run_workers(study, job, n_workers)
        if config.ensemble:
            _run_ensemble(study, job)
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


def _threads_per_worker(workers: int) -> int | None:
    """Divide the CPU cores between local workers; one worker keeps the backend default."""
    if workers == 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def prepare_data(config: TuneConfig) -> tuple[Dataset, SearchSpace]:
    """Load the dataset and the search space (the task's default unless one is given)
    and check the space against the data."""
    data = load_dataset(resolve_dataset(config.dataset, **config.dataset_options()))
    space = load_space(config.space or default_space(data.spec.task))
    probe_space(space, data.info)
    if config.ensemble and data.spec.task not in ENSEMBLE_TASKS:
        raise InputError(
            f"--ensemble {config.ensemble}: ensembles are built for {', '.join(ENSEMBLE_TASKS)} "
            f"studies, but dataset '{data.spec.name}' is {data.spec.task}; leave out --ensemble."
        )
    if config.engine == "keras-tuner" and data.info.cv:
        raise InputError(
            f"--engine keras-tuner does not cross-validate, but dataset '{data.spec.name}' "
            f"is scored over {data.info.cv} folds; pass --cv 0, or use the optuna engine."
        )
    return data, space


def _run_workers(study: optuna.Study, job: WorkerJob, n_workers: int) -> None:
    """Keep `n_workers` worker processes running (each replaced after its batch of
    trials) until the study has enough trials, then return."""
    done = len(study.get_trials(deepcopy=False, states=DONE_STATES))
    if done >= job.config.trials:
        err.print(f"study {study.study_name} already has {done} finished trials; nothing to run.")
        return
    slots: list[_Slot | None] = [_start(job, slot=i) for i in range(n_workers)]
    failure: BaseException | None = None
    deaths = 0
    try:
        while any(slots):
            wait([p.sentinel for p, _ in filter(None, slots)])
            for i, slot in enumerate(slots):
                if slot is None or slot[0].is_alive():
                    continue
                result = _collect(*slot)
                slots[i] = None
                deaths += result.reason == "died"
                if deaths > _MAX_DEATHS:
                    failure = RuntimeError(f"worker processes died {deaths} times; see above.")
                if result.reason in ("recycle", "died") and failure is None:
                    slots[i] = _start(job, slot=i)
                elif failure is None and (problem := _problem(result, job)) is not None:
                    failure = problem
                    _signal_all(slots, signal.SIGINT)
    except KeyboardInterrupt as e:
        _forward_and_wait(slots, str(e) or "SIGINT")
        raise
    if failure is not None:
        raise failure


def _run_ensemble(study: optuna.Study, job: WorkerJob) -> None:
    """Build the top-K ensemble in a worker process (the parent never loads Keras)."""
    err.print(f"building the top-{job.config.ensemble} ensemble ...")
    result = _collect(*_start(dataclasses.replace(job, task="ensemble"), slot=0))
    if result.reason != "ensemble" and (problem := _problem(result, job)) is not None:
        raise problem
    record = study.user_attrs.get("ensemble", {})
    if "val_metrics" in record:
        verdict = "is the champion" if record["champion"] else "does not beat the best trial"
        err.print(f"ensemble of trials {record['members']}: {verdict}.")


def _problem(result: WorkerResult, job: WorkerJob) -> BaseException | None:
    """The exception a worker's ending stands for, if any."""
    if result.reason == "input_error":
        return InputError(result.message)
    if result.reason == "crash":
        return RuntimeError(f"a worker process failed:\n{result.message}")
    if result.reason == "interrupted":
        return KeyboardInterrupt(result.message)
    if result.reason == "failures":
        err.print(f"stopping: {job.failure_limit} trials failed in a worker; see their reasons.")
    return None


_Slot = tuple[Any, Connection]


def _start(job: WorkerJob, *, slot: int) -> _Slot:
    job = dataclasses.replace(job, slot=slot)
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=worker_main, args=(job, sender), name="tuner-worker")
    process.start()
    sender.close()
    return process, receiver


def _collect(process: Any, receiver: Connection) -> WorkerResult:
    process.join()
    try:
        result: WorkerResult = receiver.recv()
    except EOFError:
        # Killed (SIGKILL, out of memory): its running trial is failed and retried
        # through the heartbeat; a new worker takes its place.
        err.print(f"a worker process died (exit code {process.exitcode}); starting another.")
        return WorkerResult("died", message=f"exit code {process.exitcode}")
    return result


def _signal_all(slots: list[_Slot | None], signum: int) -> None:
    for process, _ in filter(None, slots):
        if process.is_alive():
            os.kill(process.pid, signum)


def _forward_and_wait(slots: list[_Slot | None], signame: str) -> None:
    """Pass the interrupt on to the workers and let them record their running trials."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _signal_all(slots, signal.Signals[signame])
        for process, _ in filter(None, slots):
            process.join(timeout=120)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def open_study(
    config: TuneConfig,
    data: Dataset,
    space: SearchSpace,
    *,
    tracking_uri: str | None = None,
    seed_offset: int = 0,
) -> optuna.Study:
    storage = open_storage(config.storage_url, tracking_uri=tracking_uri)
    n_before = _existing_trials(storage, config.study_name)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        direction="minimize",
        sampler=_sampler(config, config.seed + n_before + seed_offset),
        pruner=_pruner(config, folds=data.info.cv),
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
    study: optuna.Study, config: TuneConfig, data: Dataset, space: SearchSpace
) -> None:
    """A resumed study must keep its data and space; a new one records them."""
    identity = {
        "task": data.spec.task,
        "dataset_sha256": data.fingerprint["sha256"],
        "horizon": data.spec.horizon,
        "targets": list(data.spec.target),
        "covariates": list(data.spec.covariates),
        "split": list(data.spec.split),
        "space": space.name,
        "engine": config.engine,
    }
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
        study.set_user_attr("config", _shareable(config))
        study.set_user_attr("fingerprint", data.fingerprint)
        study.set_user_attr("baselines", data.baselines())
        study.set_user_attr("objective", TASK_OBJECTIVES[data.spec.task])
        return
    stored = {"engine": "optuna"} | stored  # studies from before the keras-tuner engine
    changed = {k: (stored.get(k), v) for k, v in identity.items() if stored.get(k) != v}
    if changed:
        key, (was, now) = next(iter(changed.items()))
        raise InputError(
            f"--study {config.study_name}: this study was created with {key}={was!r}, "
            f"but this run has {key}={now!r}; pass a new --study name to start another study."
        )


def _shareable(config: TuneConfig) -> dict[str, Any]:
    """The configuration `tuner worker` reads back from the study (no storage URL, no secrets)."""
    out = config.resolved()
    del out["storage"]
    out["tracking_uri"] = mask_secrets(out["tracking_uri"])
    return out


def stored_config(study: optuna.Study, **overrides: Any) -> TuneConfig:
    """The configuration `tuner tune` stored in the study, with `overrides` applied."""
    stored = study.user_attrs.get("config")
    if stored is None:
        raise InputError(
            f"--study {study.study_name}: has no stored configuration (it was not created by "
            "`tuner tune`); start it with `tuner tune --study NAME --storage URL` first."
        )
    fields = {f.name for f in dataclasses.fields(TuneConfig)}
    values = {k: v for k, v in stored.items() if k in fields}
    for key in ("target", "covariates", "split"):
        values[key] = tuple(values[key]) if values.get(key) else None
    values.update(study=study.study_name, **overrides)
    return TuneConfig(**values)


def worker_config(
    study: optuna.Study,
    *,
    storage: str,
    tracking_uri: str | None,
    workers: int | None,
    gpus: str | None = None,
    trials: int | None = None,
) -> TuneConfig:
    """The configuration a `tuner worker` joining `study` runs with: the study's, with
    this host's workers and GPUs."""
    overrides: dict[str, Any] = {"storage": storage, "workers": workers, "gpus": gpus}
    if tracking_uri:
        overrides["tracking_uri"] = tracking_uri
    if trials is not None:
        overrides["trials"] = trials
    return stored_config(study, **overrides)


def _sampler(config: TuneConfig, seed: int) -> optuna.samplers.BaseSampler:
    # The seed moves on with the number of trials already run, so a resumed
    # study does not draw its first configurations again.
    name = config.sampler
    if name == "random" or config.engine == "keras-tuner":  # KerasTuner's trials are enqueued
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=8, multivariate=True, group=True, constant_liar=True
    )


def _pruner(config: TuneConfig, *, folds: int = 0) -> optuna.pruners.BasePruner:
    # Under cross-validation a trial's steps run on through its folds.
    if config.engine == "keras-tuner":  # Hyperband's rounds are KerasTuner's own
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(
        min_resource=2, max_resource=config.max_epochs * max(1, folds), reduction_factor=3
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
