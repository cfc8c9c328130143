"""The study runner: create or resume an Optuna study and run its trials.

Flow: data -> windows -> model -> trial -> study -> tracking. `run_tune` runs in
the invoking process: it checks every input, opens the study and the parent
MLflow run, then hands the trials to worker processes (`tuner.engine.worker`), one
after another, each replaced after a fixed number of trials.
"""

from __future__ import annotations

import dataclasses
import os
import time
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
from tuner.engine.jobs import WorkerJob
from tuner.engine.pool import Worker, ending, run_workers
from tuner.errors import Opt, flag_wording
from tuner.model.size import largest_model
from tuner.report.console import err
from tuner.report.plots import log_study_plots
from tuner.space import SearchSpace, probe_space
from tuner.stores import lock_wait_s, locked_store, mask_secrets
from tuner.study import records
from tuner.study.setup import grid_trials, open_study, prepare_data
from tuner.study.storage import check_storage_file
from tuner.study.summary import champion as study_champion
from tuner.study.summary import completed, summarize, trial_rows
from tuner.study.warm import WarmStart, warm_start
from tuner.tasks.base import plugin_modules
from tuner.tracking.outage import tracking_down
from tuner.tracking.tracker import (
    MLFLOW_LOCK_WAIT_S,
    Tracker,
    check_experiment,
    resolve_tracking_uri,
)

# Trials a worker process runs before a fresh one replaces it, by backend: TensorFlow
# keeps about 10 MB per trained model after `clear_session` (PyTorch unmeasured).
# A JAX worker drops JAX's compile caches each time it has grown 10 %
# (`Objective._bound_memory`): replaced every 50 trials, so a study of up to
# 50 trials per worker pays its start-up once.
TRIALS_PER_PROCESS = {"tensorflow": 10, "torch": 10, "jax": 50}


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
    trials_per_process = trials_per_process or _trials_per_process(gpus)
    study, tracking_uri = _open_stores(config, data, space)
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
        flags=flag_wording.get(),
    )
    status = "FAILED"
    try:
        run_workers(study, job, n_workers)
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


def _trials_per_process(gpus: list[str]) -> int:
    """Trials a worker process runs before another replaces it, by its backend."""
    backend = os.environ.get("KERAS_BACKEND") or default_backend(gpu=gpus[0] if gpus else None)
    return TRIALS_PER_PROCESS.get(backend, 10)


def _open_stores(config: TuneConfig, data: Dataset, space: SearchSpace) -> tuple[optuna.Study, str]:
    """The study (created, or resumed) and the tracking URI, each store checked and
    waited for; a new study's warm-start and portfolio trials enqueued and said."""
    warm = _warm_start(config, data.info, space)
    check_storage_file(config.storage_url)  # before the MLflow store is created
    tracking_uri = resolve_tracking_uri(config.tracking)
    with locked_store("tracking_uri", tracking_uri, waited=MLFLOW_LOCK_WAIT_S):
        check_experiment(tracking_uri, config.experiment or config.study_name)
    with locked_store("storage", config.storage_url, waited=lock_wait_s()):
        study = open_study(config, data, space, tracking_uri=tracking_uri)
        if warm is not None:
            warm.enqueue(study)
    if not any(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        for line in records.get(study, records.PORTFOLIO_LINES, []):  # a new study
            err.print(line)
    return study, tracking_uri


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
    with locked_store("tracking_uri", tracking_uri, waited=MLFLOW_LOCK_WAIT_S):
        tracker = Tracker(tracking_uri, config.experiment or config.study_name)
        view = tracker.set_runs_view((study.metric_names or ["value"])[0])
        closed = tracker.close_dead_runs()
        resolved = config.resolved() | {"space": str(space.path), "tracking_uri": tracking_uri}
        tracker.start_parent(
            f"{config.study_name}-{role}-{time.strftime('%Y%m%d-%H%M%S')}",
            resolved,
            tags={"study": config.study_name, "role": role},
        )
    records.put(study, records.MLFLOW_UI, view)
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
        err.print(f"{why} ({size.summary}); {Opt('trials_per_gpu', 'K')} chooses")
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


def _with_default_ensemble(config: TuneConfig, info: DatasetInfo) -> TuneConfig:
    """`--ensemble` left out: the data's default (DatasetInfo.default_ensemble) under
    an engine whose trials keep their models (none under KerasTuner), and where no
    trial is measured (an ensemble of K models is K times the latency and size)."""
    if config.ensemble is not None:
        return config
    keeps = config.search_engine.keeps_models and not config.measured
    default = info.default_ensemble if keeps else 0
    return dataclasses.replace(config, ensemble=default)


def _run_ensemble(study: optuna.Study, job: WorkerJob) -> None:
    """Build the top-K ensemble in a worker process (the parent never loads Keras)."""
    err.print(f"building the top-{job.config.ensemble} ensemble ...")
    result = Worker(dataclasses.replace(job, kind="ensemble"), slot=0).collect()
    if result.reason != "ensemble" and (problem := ending(result, job)) is not None:
        raise problem
    record = records.get(study, records.ENSEMBLE, {})
    if "val_metrics" in record:
        verdict = "is the champion" if record["champion"] else "does not beat the best trial"
        err.print(f"ensemble of trials {record['members']}: {verdict}.")


def _log_dataset(tracker: Tracker, study: optuna.Study, source: Path) -> None:
    fingerprint = records.get(study, records.FINGERPRINT)
    tracker.log_dataset(tracker.parent_id, fingerprint, source)
    tracker.log_params(tracker.parent_id, {"dataset": fingerprint})
    tracker.log_dict(tracker.parent_id, fingerprint, "dataset_fingerprint.json")
    for name, metrics in records.get(study, records.BASELINES).items():
        tracker.log_metrics(
            tracker.parent_id, {f"baseline_{name}_{k}": v for k, v in metrics.items()}
        )


def _tag_front(tracker: Tracker, study: optuna.Study, front: set[int]) -> None:
    """`--objectives`: each complete trial's run says whether it is on the Pareto front
    now (a trial can leave it as later trials beat it in every objective)."""
    for trial in completed(study):
        run_id = trial.user_attrs.get(records.MLFLOW_RUN_ID)
        if run_id:
            tracker.set_tags(run_id, {"pareto_front": str(trial.number in front).lower()})


def _finish_parent(
    tracker: Tracker, study: optuna.Study, summary: dict[str, Any], status: str
) -> None:
    best = {f"best_val_{k}": v for k, v in (summary["best_val"] or {}).items()}
    best |= {f"best_test_{k}": v for k, v in (summary["best_test"] or {}).items()}
    tracker.log_metrics(tracker.parent_id, best)
    champion = study_champion(study) if summary["best_trial"] is not None else None
    ensemble = records.get(study, records.ENSEMBLE, None) or {}
    model_uri = champion.user_attrs.get(records.MODEL_URI, "") if champion else ""
    tracker.set_tags(
        tracker.parent_id,
        {
            # Which trial is the champion, where its run and model are.
            "champion_trial": summary["best_trial"],
            "champion_run_id": champion.user_attrs.get(records.MLFLOW_RUN_ID, "")
            if champion
            else "",
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
    if summary["front"] is not None:
        _tag_front(tracker, study, {row["trial"] for row in summary["front"]})
    log_study_plots(tracker, study)
    tracker.end(tracker.parent_id, status)
