"""A worker process: runs trials of one study, then exits.

Training under the TensorFlow backend leaves about 10 MB behind per model even
after `keras.backend.clear_session()`, so there trials run in a worker process
that is replaced after `trials_per_process` trials; memory stays bounded however
long the study is (every 10 trials; every 50 under JAX, whose compile caches
are dropped once the worker has grown). The parent process never imports Keras.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import traceback
import warnings
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

import matplotlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# MLflow's "View run ... at URL" lines would break --json on stdout and show the URL's password.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from tuner.devices import import_keras_quietly, prepare_process, set_precision
from tuner.engine.jobs import LAST_TRIAL, WorkerJob, WorkerResult
from tuner.errors import InputError, TrackingUnavailable, disk_full, flag_wording
from tuner.model.stop import STOP
from tuner.report.console import quiet_libraries
from tuner.tasks.base import import_plugins

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
_STUCK_S = 60  # a worker that reaches no safe point in this time is interrupted where it is


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # The first signal asks the worker to stop at its next safe point (after a
    # batch, between trials; see tuner.model.stop); repeats (Ctrl-C reaches the
    # whole process group, the parent forwards too) must not cut its clean-up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    STOP.request(signal.Signals(signum).name)
    signal.signal(signal.SIGALRM, _interrupt_now)
    signal.alarm(_STUCK_S)


def _interrupt_now(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(STOP.signame or "SIGINT")


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends this worker SIGTERM when its parent dies, kill -9
    included, so no worker goes on running trials for nobody; the SIGTERM stops it
    at its next safe point, with its running trial recorded as interrupted."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: the parent's exit closes the pipe, noticed at the end
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def worker_main(job: WorkerJob, conn: Connection, go: Any = None) -> None:
    """Process entry: run trials and send a `WorkerResult` back through `conn` (and,
    before it, `LAST_TRIAL` when the last trial starts). A standby worker gets `go`,
    an event: it does its start-up, then waits for the event before any trial."""
    matplotlib.use("Agg")  # figures go to files and MLflow (the library forces no backend)
    flag_wording.set(job.flags)  # its input errors are worded as the invoking edge's
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    _die_with_parent(job.parent_pid)
    gpu = job.gpus[job.slot % len(job.gpus)] if job.gpus else None
    prepare_process(gpu=gpu, threads=job.threads)
    try:
        warnings.filterwarnings("ignore")
        quiet_libraries()
        import_keras_quietly()
        import_plugins(job.plugins)  # the tasks the invoking process registered
        set_precision(job.config.precision)
        # Deferred: the trial loop imports Keras, which must load after this process
        # chose its device, threads and precision (and never in the parent).
        from tuner.engine.trial_loop import run_trials

        STOP.check()  # a signal during the set-up
        result = run_trials(job, on_last=lambda: _notify(conn), go=go)
    except KeyboardInterrupt as e:
        result = WorkerResult("interrupted", message=str(e) or "SIGINT")
    except InputError as e:
        result = WorkerResult("input_error", message=str(e), option=e.option)
    except TrackingUnavailable as e:
        result = WorkerResult("tracking", message=str(e))
    except Exception as e:
        from tuner.tracking.outage import tracking_down, unavailable  # loaded by the trials

        if tracking_down(e):  # between trials: registering the champion, closing runs
            result = WorkerResult("tracking", message=unavailable(job.tracking_uri, e))
        elif (full := disk_full(e)) is not None:
            result = WorkerResult("disk_full", message=str(full))
        else:
            result = WorkerResult("crash", message=traceback.format_exc())
    try:
        conn.send(result)
        conn.close()
    except OSError:  # BrokenPipeError: the parent died; nobody waits for the result
        pass


def _notify(conn: Connection) -> None:
    with contextlib.suppress(OSError):  # the parent died: nobody waits for the notice
        conn.send(LAST_TRIAL)
