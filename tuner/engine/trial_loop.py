"""The trials of one worker process: open the study, then run trials through the
objective (or KerasTuner's loop) until a stop rule holds, or build the ensemble.

Imported by `tuner.engine.worker` once the process has set up its backend.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.engine.ensemble import run_ensemble
from tuner.engine.fused_trials import FusedTrials, fusable
from tuner.engine.jobs import WorkerJob, WorkerResult
from tuner.engine.keras_tuner import KerasTunerEngine
from tuner.engine.objective import Objective
from tuner.errors import Opt, TrialFailed, causes
from tuner.model.budget import fit_seconds
from tuner.model.stop import STOP
from tuner.paths import KERAS_TUNER_DIR
from tuner.report.console import TrialProgress, err
from tuner.study.setup import open_study, prepare_data
from tuner.study.summary import claimed, epochs_spent, finished
from tuner.tracking.tracker import Tracker


def run_trials(
    job: WorkerJob, *, on_last: Callable[[], None] = lambda: None, go: Any = None
) -> WorkerResult:
    """Open the study and run this worker's trials (or its ensemble). `on_last` is
    called as the last trial of this process starts, when more trials will follow;
    with `go` (an event), this worker is a standby: it waits for it once set up."""
    config = job.config
    data, space = prepare_data(config, isolate=False)  # its parent checked the space
    study = open_study(
        config, data, space, tracking_uri=job.tracking_uri, seed_offset=job.seed_salt + job.slot
    )
    tracker = Tracker(job.tracking_uri, config.experiment or config.study_name)
    tracker.parent_id = job.parent_run_id
    objective = Objective(space=space, data=data, config=config, tracker=tracker)
    objective.process_started = job.started
    # Libraries and data loaded so far live as long as the worker: keep them out of
    # the collections that free each trial's model (0.3 s a trial otherwise).
    gc.collect()
    gc.freeze()
    if go is None:
        job = dataclasses.replace(job, deadline=job.own_deadline(time.time()))
    else:  # its start-up ran beside its predecessor's last trial: it cost no time
        while not go.wait(timeout=0.5):
            STOP.check()
    objective.deadline = job.deadline
    stop = _StopRules(job, on_last)
    try:
        STOP.check()
        if job.kind == "ensemble":
            return _ensemble(study, objective, config.ensemble or 0)
        stop.first_is_last(study)
        if config.search_engine.own_loop:
            result = _keras_tuner_search(study, objective, data, space, job)
        elif config.fused and not (why := fusable(objective)):
            result = _fused_loop(study, objective, stop, job)
        else:
            if config.fused:
                err.print(f"{Opt('fuse', config.fuse)}: {why}", highlight=False)
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

    config = job.config
    before = len(study.get_trials(deepcopy=False))
    engine = KerasTunerEngine(
        study=study,
        objective=objective,
        space=space,
        data=data,
        algorithm=config.kt_tuner,
        max_epochs=config.max_epochs,
        trials=config.n_trials,
        epoch_budget=config.epoch_budget,
        seed=config.seed + before,
        directory=KERAS_TUNER_DIR,
    )
    engine.search()
    return WorkerResult("enough", trials_run=len(study.get_trials(deepcopy=False)) - before)


def _ensemble(study: optuna.Study, objective: Any, size: int) -> WorkerResult:
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


_FAILED_ELSEWHERE = "Cannot tell a "  # Optuna's words for a trial that is not running


def optimize(study: optuna.Study, objective: Any, **kwargs: Any) -> None:
    """`study.optimize`, where a trial that another worker failed while it trained
    here (its heartbeat missed the grace period on a starved host; its retry runs as
    a new trial) ends with a line instead of stopping this worker."""
    last: list[int] = []

    def run(trial: optuna.Trial) -> Any:
        last[:] = [trial.number]
        return objective(trial)

    try:
        study.optimize(run, **kwargs)
    except (ValueError, AssertionError) as e:  # Optuna's ValueError, then its own assert
        if not any(str(seen).startswith(_FAILED_ELSEWHERE) for seen in causes(e)):
            raise
        err.print(
            f"trial {last[0]} was failed by another worker (no heartbeat within the grace "
            "period) while it trained here; its retry runs as a new trial"
        )


def _trials_loop(
    study: optuna.Study, objective: Any, stop: _StopRules, job: WorkerJob
) -> WorkerResult:
    config = job.config
    while finished(study) < config.n_trials:
        STOP.check()
        if stop.over_budget(study):
            return WorkerResult("budget", trials_run=stop.trials_run)
        if _remaining(job.deadline) == 0.0:
            return WorkerResult("timeout", trials_run=stop.trials_run)
        if claimed(study) >= config.n_trials:
            _wait_for_others(study)
            continue
        with TrialProgress(config.n_trials, finished(study)) as progress:
            objective.progress = progress
            optimize(
                study,
                objective,
                timeout=_remaining(job.deadline),
                catch=(TrialFailed,),
                callbacks=[progress, stop],
                gc_after_trial=False,
            )
        STOP.check()  # optimize returned early: a stop was requested
        reason = stop.reason(study)
        if reason != "enough":
            return WorkerResult(reason, trials_run=stop.trials_run)
    return WorkerResult("enough", trials_run=stop.trials_run)


def _fused_loop(
    study: optuna.Study, objective: Objective, stop: _StopRules, job: WorkerJob
) -> WorkerResult:
    """`_trials_loop` for groups of `--fuse` trials trained as one program (under
    `--fuse auto`, of the size the first group measured)."""
    config = job.config
    halt = False
    with TrialProgress(config.n_trials, finished(study)) as progress:
        objective.progress = None  # no per-round bar: the group's rounds are its own

        def told(study: optuna.Study, trial: FrozenTrial) -> None:
            nonlocal halt
            progress(study, trial)
            halt = stop.told(study, trial) or halt

        groups = FusedTrials(study, objective, members=config.fuse, told=told)
        while not halt and finished(study) < config.n_trials:
            STOP.check()
            if stop.over_budget(study):
                return WorkerResult("budget", trials_run=stop.trials_run)
            left = _remaining(job.deadline)
            if left == 0.0:
                return WorkerResult("timeout", trials_run=stop.trials_run)
            wanted = config.n_trials - claimed(study)
            if wanted <= 0:
                _wait_for_others(study)
                continue
            share = fit_seconds(config.timeout, folds=1)  # one trial's; the group's members'
            groups.run(most=wanted, share=share, left=left)
    STOP.check()
    reason = stop.reason(study) if halt else "enough"
    return WorkerResult("enough" if reason == "timeout" else reason, trials_run=stop.trials_run)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.time())


def _wait_for_others(study: optuna.Study) -> None:
    """The last trials are running elsewhere: wait, and take over any whose worker died.

    `fail_stale_trials` fails trials whose heartbeat stopped; the storage's retry
    callback puts them back as waiting trials, which this worker then runs.
    """
    time.sleep(2.0)
    optuna.storages.fail_stale_trials(study)


class _StopRules:
    """Stop when finished plus running trials reach the total wanted (so several
    workers do not overshoot), after `trials_per_process` trials (recycle), after
    too many failures, or once the epoch budget is spent."""

    def __init__(self, job: WorkerJob, on_last: Callable[[], None]) -> None:
        self._job = job
        self._on_last = on_last
        self.trials_run = 0
        self.failed = 0

    def first_is_last(self, study: optuna.Study) -> None:
        """Before the first trial: a process of one trial says so at once (when more
        trials will follow; a standby that finds the study done must not start
        another)."""
        if self._job.trials_per_process == 1 and self._more_follow(study):
            self._on_last()

    def _more_follow(self, study: optuna.Study) -> bool:
        return claimed(study) + 1 < self._job.config.n_trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.told(study, trial):
            study.stop()

    def told(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Count a finished trial; whether this worker stops now."""
        self.trials_run += 1
        self.failed += trial.state == TrialState.FAIL
        if STOP.signame or self.reason(study) != "timeout":
            return True
        if self.trials_run == self._job.trials_per_process - 1 and self._more_follow(study):
            self._on_last()  # the next trial is this process's last, and more will follow it
        return False

    def reason(self, study: optuna.Study) -> str:
        """Why this worker stops (`timeout` when none of the rules holds)."""
        job = self._job
        if claimed(study) >= job.config.n_trials:
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
