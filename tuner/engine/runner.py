"""The study runner: create or resume an Optuna study and run its trials.

Flow: data -> windows -> model -> trial -> study -> tracking. `run_tune` runs in
the invoking process: it checks every input, opens the study and the parent
MLflow run, then hands the trials to worker processes (`tuner.engine.worker`), one
after another, each replaced after a fixed number of trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import time
import types
from collections.abc import Iterator
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.config import TuneConfig
from tuner.data.spec import Dataset, DatasetInfo
from tuner.devices import (
    choose_gpus,
    default_backend,
    default_trials_per_gpu,
    gpu_memory_mb,
    gpu_slots,
)
from tuner.engine.jobs import LAST_TRIAL, WorkerJob, WorkerResult
from tuner.engine.worker import worker_main
from tuner.errors import DiskFull, InputError, TrackingUnavailable
from tuner.model.size import largest_model
from tuner.report.console import err
from tuner.report.plots import log_study_plots
from tuner.space import SearchSpace, probe_space
from tuner.stores import lock_wait_s, locked_store, mask_secrets
from tuner.study.portfolio import PORTFOLIO_LINES
from tuner.study.setup import grid_trials, open_study, prepare_data
from tuner.study.storage import check_storage_file
from tuner.study.summary import completed, finished, summarize, trial_rows
from tuner.study.warm import WarmStart, warm_start
from tuner.tasks.base import plugin_modules
from tuner.tracking.tracker import (
    MLFLOW_LOCK_WAIT_S,
    Tracker,
    check_experiment,
    resolve_tracking_uri,
    tracking_down,
)

# Trials a worker process runs before a fresh one replaces it, by backend: TensorFlow
# keeps about 10 MB per trained model after `clear_session` (PyTorch unmeasured).
# A JAX worker drops JAX's compile caches each time it has grown 10 %
# (`Objective._bound_memory`): replaced every 50 trials, so a study of up to
# 50 trials per worker pays its start-up once.
TRIALS_PER_PROCESS = {"tensorflow": 10, "torch": 10, "jax": 50}
_MAX_DEATHS = 5  # worker processes killed (SIGKILL, out of memory) before the run gives up


def run_tune(
    config: TuneConfig, *, role: str = "tune", trials_per_process: int | None = None
) -> dict[str, Any]:
    """Create or resume the study, run the trials still missing, return the summary.

    `role` ("tune" or "worker") names the invocation in its parent MLflow run;
    `trials_per_process` (default: by backend, TRIALS_PER_PROCESS) how many trials
    a worker process runs before another replaces it.
    """
    data, space = prepare_data(config)
    config = _with_default_ensemble(config, data.info)
    gpus = worker_gpus(config, space, data.info)
    n_workers = config.workers or max(1, len(gpus))
    if config.search_engine.own_loop:  # one search, in one process, start to end
        n_workers, trials_per_process = 1, config.n_trials
    if config.sampler == "grid":
        config, size = grid_trials(config, data, space)
        err.print(f"grid search: {size} points in space {space.name}; {config.n_trials} wanted")
    if trials_per_process is None:
        backend = os.environ.get("KERAS_BACKEND") or default_backend(gpu=gpus[0] if gpus else None)
        trials_per_process = TRIALS_PER_PROCESS.get(backend, 10)
    warm = _warm_start(config, data.info, space)
    check_storage_file(config.storage_url)  # before the MLflow store is created
    tracking_uri = resolve_tracking_uri(config.tracking)
    with locked_store("--tracking-uri", tracking_uri, waited=MLFLOW_LOCK_WAIT_S):
        check_experiment(tracking_uri, config.experiment or config.study_name)
    with locked_store("--storage", config.storage_url, waited=lock_wait_s()):
        study = open_study(config, data, space, tracking_uri=tracking_uri)
        if warm is not None:
            warm.enqueue(study)
    if not any(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        for line in study.user_attrs.get(PORTFOLIO_LINES, []):  # a new study
            err.print(line)
    tracker = _open_tracker(config, study, data, space, tracking_uri=tracking_uri, role=role)
    job = WorkerJob(
        config=config,
        tracking_uri=tracking_uri,
        parent_run_id=tracker.parent_id,
        trials_per_process=trials_per_process,
        deadline=time.time() + config.timeout if config.timeout else None,
        failure_limit=config.n_trials,
        threads=_threads_per_worker(n_workers),
        gpus=tuple(gpus),
        # Workers started at the same moment must not draw the same configurations;
        # separate `tuner worker` invocations differ by process id as well.
        seed_salt=0 if role == "tune" else 1000 * (os.getpid() % 100_000),
        parent_pid=os.getpid(),
        plugins=plugin_modules(),
    )
    status = "FAILED"
    try:
        _run_workers(study, job, n_workers)
        if config.ensemble and len(completed(study)) >= 2:  # an ensemble needs two
            _run_ensemble(study, job)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        summary = summarize(
            study,
            storage=mask_secrets(config.storage_url),
            tracking_uri=mask_secrets(tracking_uri),
        )
        try:
            _finish_parent(tracker, study, summary, status)
        except Exception as e:
            if not tracking_down(e):
                raise
            err.print("the MLflow parent run stays open: the next run closes it")
    return summary


def _open_tracker(
    config: TuneConfig,
    study: optuna.Study,
    data: Dataset,
    space: SearchSpace,
    *,
    tracking_uri: str,
    role: str,
) -> Tracker:
    """The invocation's Tracker, its parent run started: runs left RUNNING by dead
    processes closed, the study's MLflow view and dataset recorded."""
    with locked_store("--tracking-uri", tracking_uri, waited=MLFLOW_LOCK_WAIT_S):
        tracker = Tracker(tracking_uri, config.experiment or config.study_name)
        view = tracker.set_runs_view((study.metric_names or ["value"])[0])
        closed = tracker.close_dead_runs()
        resolved = config.resolved() | {"space": str(space.path), "tracking_uri": tracking_uri}
        tracker.start_parent(
            f"{config.study_name}-{role}-{time.strftime('%Y%m%d-%H%M%S')}",
            resolved,
            tags={"study": config.study_name, "role": role},
        )
    study.set_user_attr("mlflow_ui", view)
    if closed:
        err.print(f"closed {closed} MLflow run(s) left RUNNING by processes that died (KILLED)")
    _log_dataset(tracker, study, data.spec.path)
    return tracker


def worker_gpus(
    config: TuneConfig, space: SearchSpace | None = None, info: DatasetInfo | None = None
) -> list[str]:
    """The GPU of each local worker process (worker i takes entry i modulo the length;
    empty on CPUs): every chosen GPU, --trials-per-gpu times, or as many times as
    the space's largest model allows when that is not given."""
    gpus = choose_gpus(config.gpus)
    per_gpu = config.trials_per_gpu
    if per_gpu is None and gpus and space is not None and info is not None and not config.workers:
        size = largest_model(probe_space(space, info), info)
        per_gpu, why = default_trials_per_gpu(
            weights=size.weights,
            training_mb=size.training_mb,
            gpu_mb=gpu_memory_mb(gpus),
            cores=os.cpu_count() or 1,
            n_gpus=len(gpus),
        )
        err.print(f"{why} ({size.summary}); --trials-per-gpu K chooses")
    return gpu_slots(gpus, per_gpu=per_gpu)


def _warm_start(config: TuneConfig, info: DatasetInfo, space: SearchSpace) -> WarmStart | None:
    if not config.warm_start:
        return None
    warm = warm_start(
        config.warm_start,
        study=config.study_name,
        storage_url=config.storage_url,
        space=space,
        info=info,
        count=config.warm_start_trials,
    )
    for line in warm.lines:
        err.print(line)
    return warm


def _threads_per_worker(workers: int) -> int | None:
    """Divide the CPU cores between local workers; one worker keeps the backend default."""
    if workers == 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def _run_workers(study: optuna.Study, job: WorkerJob, n_workers: int) -> None:
    """Keep `n_workers` worker processes running (each replaced after its batch of
    trials) until the study has enough trials, then return.

    A worker says when it starts its last trial; its replacement starts then and
    does its start-up (imports, data, study: about 12 s here) while that trial
    runs, then waits to be released. Where the cores are busy with that trial
    (2 cores here), the start-up still slows it: the gap shrinks, the wall time
    barely moves.
    """
    done = finished(study)
    if done >= job.config.n_trials:
        err.print(f"study {study.study_name} already has {done} finished trials; nothing to run.")
        return
    slots: list[_Worker | None] = [_Worker(job, slot=i) for i in range(n_workers)]
    failure: BaseException | None = None
    deaths = 0
    try:
        while any(slots):
            live = [w for w in slots if w is not None]
            wait([w.process.sentinel for w in live] + [w.receiver for w in live if w.listening])
            for i, worker in enumerate(slots):
                if worker is None:
                    continue
                if worker.process.is_alive():
                    if worker.last_trial_started() and failure is None:
                        worker.standby = _Worker(job, slot=i, standby=True)
                    continue
                result = worker.collect()
                after = worker.standby
                deaths += result.reason == "died"
                if deaths > _MAX_DEATHS:
                    failure = RuntimeError(f"worker processes died {deaths} times; see above.")
                if failure is None and result.reason in ("recycle", "died"):
                    slots[i] = (after or _Worker(job, slot=i)).release()
                    continue
                if failure is None and (problem := _problem(result, job)) is not None:
                    failure = problem
                    _signal_all(slots, signal.SIGINT)
                if failure is None and after is not None:  # the study is done: it finds
                    after.release()  # nothing to run, or the deadline passed
                elif after is not None:
                    _signal_all([after], signal.SIGINT)
                slots[i] = after
    except KeyboardInterrupt as e:
        _forward_and_wait(slots, str(e) or "SIGINT")
        raise
    if failure is not None:
        raise failure


def _with_default_ensemble(config: TuneConfig, info: DatasetInfo) -> TuneConfig:
    """`--ensemble` left out: the data's default (DatasetInfo.default_ensemble) under
    an engine whose trials keep their models (none under KerasTuner)."""
    if config.ensemble is not None:
        return config
    default = info.default_ensemble if config.search_engine.keeps_models else 0
    return dataclasses.replace(config, ensemble=default)


def _run_ensemble(study: optuna.Study, job: WorkerJob) -> None:
    """Build the top-K ensemble in a worker process (the parent never loads Keras)."""
    err.print(f"building the top-{job.config.ensemble} ensemble ...")
    result = _Worker(dataclasses.replace(job, kind="ensemble"), slot=0).collect()
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
    if result.reason == "tracking":
        return TrackingUnavailable(result.message)
    if result.reason == "disk_full":
        return DiskFull(result.message)
    if result.reason == "crash":
        return RuntimeError(f"a worker process failed:\n{result.message}")
    if result.reason == "interrupted":
        return KeyboardInterrupt(result.message)
    if result.reason == "failures":
        err.print(f"stopping: {job.failure_limit} trials failed in a worker; see their reasons.")
    return None


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Start a spawned worker without the caller's main module.

    A spawned child imports the parent's `__main__` again (from its file or module
    name) before it runs its target, so a script calling `tuner.tune` without an
    `if __name__ == "__main__":` guard would start another study in every worker.
    A worker needs nothing from it: its job holds the study's options and staged
    files only (pickling it fails here, loudly, should that change).
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _Worker:
    """One worker process and the pipe it reports through; `standby`: the process
    that replaces it, started during its last trial."""

    def __init__(self, job: WorkerJob, *, slot: int, standby: bool = False) -> None:
        job = dataclasses.replace(job, slot=slot, started=time.time())
        ctx = multiprocessing.get_context("spawn")
        self.receiver, sender = ctx.Pipe(duplex=False)
        self._go = ctx.Event() if standby else None
        self.process = ctx.Process(
            target=worker_main, args=(job, sender, self._go), name="tuner-worker"
        )
        with _main_hidden():
            self.process.start()
        sender.close()
        self.standby: _Worker | None = None
        self.listening = True  # its notice of the last trial may still come
        self._result: WorkerResult | None = None

    def release(self) -> _Worker:
        """Let a standby worker start its trials (it has done its start-up)."""
        if self._go is not None:
            self._go.set()
        return self

    def last_trial_started(self) -> bool:
        """Whether the worker has just said it started its last trial (it may have
        sent its result instead: kept for `collect`)."""
        if not self.listening or not self.receiver.poll():
            return False
        self.listening = False
        try:
            message = self.receiver.recv()
        except EOFError:
            return False
        if isinstance(message, WorkerResult):
            self._result = message
            return False
        return bool(message == LAST_TRIAL)

    def collect(self) -> WorkerResult:
        self.process.join()
        if self._result is not None:
            return self._result
        try:
            while True:
                message = self.receiver.recv()
                if isinstance(message, WorkerResult):
                    return message
        except EOFError:
            # Killed (SIGKILL, out of memory): its running trial is failed and retried
            # through the heartbeat; a new worker takes its place.
            code = self.process.exitcode
            err.print(f"a worker process died (exit code {code}); starting another.")
            return WorkerResult("died", message=f"exit code {code}")


def _processes(workers: list[_Worker | None]) -> list[Any]:
    """The workers' processes and their standbys'."""
    found = []
    for worker in filter(None, workers):
        found.append(worker.process)
        if worker.standby is not None:
            found.append(worker.standby.process)
    return found


def _signal_all(workers: list[_Worker | None], signum: int) -> None:
    for process in _processes(workers):
        if process.is_alive():
            os.kill(process.pid, signum)


def _forward_and_wait(workers: list[_Worker | None], signame: str) -> None:
    """Pass the interrupt on to the workers and let them record their running trials."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _signal_all(workers, signal.Signals[signame])
        for process in _processes(workers):
            process.join(timeout=120)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_dataset(tracker: Tracker, study: optuna.Study, source: Path) -> None:
    fingerprint = study.user_attrs["fingerprint"]
    tracker.log_dataset(tracker.parent_id, fingerprint, source)
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
    champion = study.best_trial if summary["best_trial"] is not None else None
    ensemble = study.user_attrs.get("ensemble") or {}
    model_uri = champion.user_attrs.get("model_uri", "") if champion else ""
    tracker.set_tags(
        tracker.parent_id,
        {
            # Which trial is the champion, where its run and model are.
            "champion_trial": summary["best_trial"],
            "champion_run_id": champion.user_attrs.get("mlflow_run_id", "") if champion else "",
            "champion_model_uri": ensemble.get("model_uri", model_uri)
            if ensemble.get("champion")
            else model_uri,
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
