"""What the runner hands a worker process and what it hands back: plain data that
crosses the process boundary."""

from __future__ import annotations

from dataclasses import dataclass

from tuner.config import TuneConfig


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
    parent_pid: int = 0  # the invoking process: the worker dies with it


@dataclass(frozen=True)
class WorkerResult:
    """How a worker ended: `enough`, `recycle`, `timeout`, `budget`, `failures`, `input_error`,
    `interrupted` or `crash` (with the message or traceback)."""

    reason: str
    trials_run: int = 0
    message: str = ""
