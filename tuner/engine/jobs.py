"""What the runner hands a worker process and what it hands back: plain data that
crosses the process boundary."""

from __future__ import annotations

from dataclasses import dataclass

from tuner.config import TuneConfig

LAST_TRIAL = "last trial"  # a worker's notice: its replacement may start its start-up


@dataclass(frozen=True, kw_only=True)
class WorkerJob:
    """What a worker needs; plain data, so it crosses the process boundary."""

    config: TuneConfig
    tracking_uri: str
    parent_run_id: str
    trials_per_process: int
    deadline: float | None  # time.time() after which no trial starts (before start-up)
    failure_limit: int
    threads: int | None = None  # CPU threads for this worker's backend; None: its default
    gpus: tuple[str, ...] = ()  # GPUs of this invocation; slot i uses gpus[i % len(gpus)]
    slot: int = 0  # which of the invocation's concurrent workers this is
    seed_salt: int = 0  # added to the sampler seed with the slot
    kind: str = "trials"  # or "ensemble": build the top-K ensemble after the trials
    plugins: tuple[str, ...] = ()  # modules registering tasks beyond the built-in ones
    parent_pid: int = 0  # the invoking process: the worker dies with it
    started: float = 0.0  # time.time() when this worker process was started
    flags: bool = False  # input errors name command-line flags (the CLI started it)

    def own_deadline(self, ready: float) -> float | None:
        """The deadline for a worker ready at `ready`: its start-up (imports, data,
        study; about 12 s here) does not count against --timeout, so a short timeout
        still runs trials."""
        if self.deadline is None or not self.started:
            return self.deadline
        return self.deadline + max(0.0, ready - self.started)


@dataclass(frozen=True)
class WorkerResult:
    """How a worker ended: `enough`, `recycle`, `timeout`, `budget`, `failures`, `input_error`,
    `interrupted` or `crash` (with the message or traceback)."""

    reason: str
    trials_run: int = 0
    message: str = ""
    option: str | None = None  # an input error's option at fault (InputError.option)
