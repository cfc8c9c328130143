"""The worker processes of one invocation: each started without the caller's main
module, replaced after its batch of trials (its standby started during its last
trial), interrupted together; what a worker's ending means for the study.
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
from typing import Any

import optuna

from tuner.engine.jobs import LAST_TRIAL, WorkerJob, WorkerResult
from tuner.engine.worker import worker_main
from tuner.errors import DiskFull, InputError, TrackingUnavailable
from tuner.report.console import err
from tuner.study.summary import finished

_MAX_DEATHS = 5  # worker processes killed (SIGKILL, out of memory) before the run gives up


def run_workers(study: optuna.Study, job: WorkerJob, n_workers: int) -> None:
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
    pool = _Pool(job, n_workers)
    try:
        while any(pool.slots):
            pool.step()
    except KeyboardInterrupt as e:
        _forward_and_wait(pool.slots, str(e) or "SIGINT")
        raise
    if pool.failure is not None:
        raise pool.failure


class _Pool:
    """The invocation's worker slots, and the first failure that stops them."""

    def __init__(self, job: WorkerJob, n_workers: int) -> None:
        self.job = job
        self.slots: list[Worker | None] = [Worker(job, slot=i) for i in range(n_workers)]
        self.failure: BaseException | None = None
        self.deaths = 0

    def step(self) -> None:
        """Wait for a worker to report or end; start standbys, fill ended slots."""
        live = [w for w in self.slots if w is not None]
        wait([w.process.sentinel for w in live] + [w.receiver for w in live if w.listening])
        for i, worker in enumerate(self.slots):
            if worker is None:
                continue
            if not worker.process.is_alive():
                self.slots[i] = self._after(worker, i)
            elif worker.last_trial_started() and self.failure is None:
                worker.standby = Worker(self.job, slot=i, standby=True)

    def _after(self, worker: Worker, i: int) -> Worker | None:
        """What takes an ended worker's slot: its standby (or a new worker) while the
        study goes on, nothing once it is done or failed."""
        result = worker.collect()
        after = worker.standby
        self.deaths += result.reason == "died"
        if self.deaths > _MAX_DEATHS:
            self.failure = RuntimeError(f"worker processes died {self.deaths} times; see above.")
        if self.failure is None and result.reason in ("recycle", "died"):
            return (after or Worker(self.job, slot=i)).release()
        if self.failure is None and (problem := ending(result, self.job)) is not None:
            self.failure = problem
            _signal_all(self.slots, signal.SIGINT)
        if self.failure is None and after is not None:  # the study is done: it finds
            after.release()  # nothing to run, or the deadline passed
        elif after is not None:
            _signal_all([after], signal.SIGINT)
        return after


def ending(result: WorkerResult, job: WorkerJob) -> BaseException | None:
    """The exception a worker's ending stands for, if any."""
    if result.reason == "input_error":
        return InputError(result.message, option=result.option)
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


class Worker:
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
        self.standby: Worker | None = None
        self.listening = True  # its notice of the last trial may still come
        self._result: WorkerResult | None = None

    def release(self) -> Worker:
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


def _processes(workers: list[Worker | None]) -> list[Any]:
    """The workers' processes and their standbys'."""
    found = []
    for worker in filter(None, workers):
        found.append(worker.process)
        if worker.standby is not None:
            found.append(worker.standby.process)
    return found


def _signal_all(workers: list[Worker | None], signum: int) -> None:
    for process in _processes(workers):
        if process.is_alive():
            os.kill(process.pid, signum)


def _forward_and_wait(workers: list[Worker | None], signame: str) -> None:
    """Pass the interrupt on to the workers and let them record their running trials."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _signal_all(workers, signal.Signals[signame])
        for process in _processes(workers):
            process.join(timeout=120)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
