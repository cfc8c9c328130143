"""A worker process: runs trials of one study, then exits.

Training under the TensorFlow backend leaves about 10 MB behind per model even
after `keras.backend.clear_session()`, so trials run in a worker process that
is replaced after `trials_per_process` trials; memory stays bounded however
long the study is. The parent process never imports Keras.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import time
import traceback
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner._config import TuneConfig
from tuner._console import TrialProgress, quiet_libraries
from tuner._devices import prepare_process, set_precision
from tuner._errors import InputError, TrialFailed
from tuner._summary import epochs_spent

DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True, kw_only=True)
class WorkerJob:
    """What a worker needs; plain data, so it crosses the process boundary."""

    config: TuneConfig
    tracking_uri: str
    parent_run_id: str
    trials_per_process: int
    deadline: float | None  # time.time() after which no trial starts
    failure_limit: int
    threads: int | None = None  # CPU threads for this worker's backend; None: its default
    gpus: tuple[str, ...] = ()  # GPUs of this invocation; slot i uses gpus[i % len(gpus)]
    slot: int = 0  # which of the invocation's concurrent workers this is
    seed_salt: int = 0  # added to the sampler seed with the slot
    task: str = "trials"  # or "ensemble": build the top-K ensemble after the trials


@dataclass(frozen=True)
class WorkerResult:
    """How a worker ended: `enough`, `recycle`, `timeout`, `budget`, `failures`, `input_error`,
    `interrupted` or `crash` (with the message or traceback)."""

    reason: str
    trials_run: int = 0
    message: str = ""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # The first signal interrupts the running trial; repeats (Ctrl-C reaches the
    # whole process group, the parent forwards too) must not cut its clean-up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def worker_main(job: WorkerJob, conn: Connection) -> None:
    """Process entry: run trials and send a `WorkerResult` back through `conn`."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    gpu = job.gpus[job.slot % len(job.gpus)] if job.gpus else None
    prepare_process(gpu=gpu, threads=job.threads)
    try:
        result = _run(job)
    except KeyboardInterrupt as e:
        result = WorkerResult("interrupted", message=str(e) or "SIGINT")
    except InputError as e:
        result = WorkerResult("input_error", message=str(e))
    except Exception:
        result = WorkerResult("crash", message=traceback.format_exc())
    conn.send(result)
    conn.close()


def _run(job: WorkerJob) -> WorkerResult:
    warnings.filterwarnings("ignore")
    _import_keras_quietly()
    set_precision(job.config.precision)
    from tuner._objective import Objective
    from tuner._study import open_study, prepare_data
    from tuner._tracking import Tracker

    config = job.config
    data, space = prepare_data(config)
    study = open_study(
        config, data, space, tracking_uri=job.tracking_uri, seed_offset=job.seed_salt + job.slot
    )
    tracker = Tracker(job.tracking_uri, config.experiment or config.study_name)
    tracker.parent_id = job.parent_run_id
    objective = Objective(space=space, data=data, config=config, tracker=tracker)
    # Libraries and data loaded so far live as long as the worker: keep them out of
    # the collections that free each trial's model (0.3 s a trial otherwise).
    gc.collect()
    gc.freeze()
    stop = _StopRules(job)
    try:
        if job.task == "ensemble":
            return _ensemble(study, objective, config.ensemble)
        if config.engine == "keras-tuner":
            result = _keras_tuner_search(study, objective, data, space, job)
        else:
            result = _trials_loop(study, objective, stop, job)
        if result.reason != "recycle":  # the study's trials are over, or this host's are
            objective.finalize(study)
        return result
    except KeyboardInterrupt:
        _settle_interrupted(study, objective)
        raise


def _keras_tuner_search(
    study: optuna.Study, objective: Any, data: Any, space: Any, job: WorkerJob
) -> WorkerResult:
    """The whole KerasTuner search in this process (it keeps its own state in memory)."""
    from tuner._keras_tuner import KerasTunerEngine
    from tuner._paths import KERAS_TUNER_DIR

    config = job.config
    before = len(study.get_trials(deepcopy=False))
    engine = KerasTunerEngine(
        study=study,
        objective=objective,
        space=space,
        data=data,
        algorithm=config.kt_tuner,
        max_epochs=config.max_epochs,
        trials=config.trials,
        epoch_budget=config.epoch_budget,
        seed=config.seed + before,
        directory=KERAS_TUNER_DIR,
    )
    engine.search()
    return WorkerResult("enough", trials_run=len(study.get_trials(deepcopy=False)) - before)


def _ensemble(study: optuna.Study, objective: Any, size: int) -> WorkerResult:
    from tuner._ensemble import run_ensemble  # loads Keras, as the objective does

    record = run_ensemble(study, objective, size=size)
    return WorkerResult("ensemble", message=json.dumps(record, default=str))


def _settle_interrupted(study: optuna.Study, objective: Any) -> None:
    """An interrupt between Optuna's steps can leave the current trial running: fail it."""
    trial = objective.current
    if trial is None:
        return
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if trial.number in running:
        objective.record_interrupt(trial)
        study.tell(trial, state=TrialState.FAIL)


def _trials_loop(
    study: optuna.Study, objective: Any, stop: _StopRules, job: WorkerJob
) -> WorkerResult:
    config = job.config
    while _finished(study) < config.trials:
        if stop.over_budget(study):
            return WorkerResult("budget", trials_run=stop.trials_run)
        if _remaining(job.deadline) == 0.0:
            return WorkerResult("timeout", trials_run=stop.trials_run)
        if _claimed(study) >= config.trials:
            _wait_for_others(study)
            continue
        with TrialProgress(config.trials, _finished(study)) as progress:
            objective.progress = progress
            study.optimize(
                objective,
                timeout=_remaining(job.deadline),
                catch=(TrialFailed,),
                callbacks=[progress, stop],
                gc_after_trial=False,
            )
        reason = stop.reason(study)
        if reason != "enough":
            return WorkerResult(reason, trials_run=stop.trials_run)
    return WorkerResult("enough", trials_run=stop.trials_run)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.time())


def _wait_for_others(study: optuna.Study) -> None:
    """The last trials are running elsewhere: wait, and take over any whose worker died.

    `fail_stale_trials` fails trials whose heartbeat stopped; the storage's retry
    callback puts them back as waiting trials, which this worker then runs.
    """
    time.sleep(2.0)
    optuna.storages.fail_stale_trials(study)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=DONE_STATES))


def _import_keras_quietly() -> None:
    """Import Keras with its backend's start-up chatter (C++ log lines) kept off stderr."""
    quiet_libraries()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            import keras

            keras.ops.zeros(1)  # device discovery logs its own lines too (no GPU: "cuInit")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if keras.backend.backend() != "tensorflow":
        _keep_tensorflow_out()
    # Retracing notices: every trial builds a new model, so retracing is expected.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _keep_tensorflow_out() -> None:
    """Under JAX or PyTorch, tell Keras that TensorFlow is not there. Keras would
    import it (3.5 s and about 500 MB in each worker here) only to check whether
    objects are TensorFlow tensors when it seeds or saves a model, and to seed
    TensorFlow's generator; this worker makes no TensorFlow objects."""
    from keras.src.utils.module_utils import tensorflow

    if tensorflow.module is None:
        tensorflow._available = False


class _StopRules:
    """Stop when finished plus running trials reach the total wanted (so several
    workers do not overshoot), after `trials_per_process` trials (recycle), after
    too many failures, or once the epoch budget is spent."""

    def __init__(self, job: WorkerJob) -> None:
        self._job = job
        self.trials_run = 0
        self.failed = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.trials_run += 1
        self.failed += trial.state == TrialState.FAIL
        if self.reason(study) != "timeout":
            study.stop()

    def reason(self, study: optuna.Study) -> str:
        """Why this worker stops (`timeout` when none of the rules holds)."""
        job = self._job
        if _claimed(study) >= job.config.trials:
            return "enough"
        if self.failed >= job.failure_limit:
            return "failures"
        if self.over_budget(study):
            return "budget"
        if self.trials_run >= job.trials_per_process:
            return "recycle"
        return "timeout"

    def over_budget(self, study: optuna.Study) -> bool:
        """The study's trials have trained `--epoch-budget` epochs (or more) in all."""
        budget = self._job.config.epoch_budget
        return budget is not None and epochs_spent(study) >= budget


def _claimed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(*DONE_STATES, TrialState.RUNNING)))
