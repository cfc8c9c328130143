"""B7 storage load: how many workers one study storage serves.

Simulated workers run the storage path of the real worker loop, with training
replaced by a fixed-time sleep: open the study through `tuner`'s own storage
(heartbeats, the stale-trial callback, the proxy client), then per trial: the stale
check, ask, the surplus check (`refuse_surplus`, a read of every claimed trial),
the heartbeat thread, one `report` + `should_prune` per simulated epoch, the trial's
user attributes, tell, and the claimed count the stop rule reads. A benchmark of
the storage, not of training: the sampler is random (TPE's CPU cost per ask is the
worker's, not the storage's, and would only measure these 2 cores).

Backends: SQLite (the embedded default), PostgreSQL, and Optuna's gRPC storage
proxy (`tuner storage-proxy`) in front of PostgreSQL. PostgreSQL comes from
$TUNER_TEST_POSTGRES_URL (as root: `source .ci/postgres.sh`); each configuration
gets a fresh database. Without it those rows are not run, and say so.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import environment

TRIAL_S = 1.0  # the simulated training time of one trial
EPOCHS = 10  # reports per trial
WORKERS = (1, 8, 32, 64)
QUICK_WORKERS = (1, 8)
WINDOW_S = 30.0  # measured after every worker is ready
QUICK_WINDOW_S = 10.0
USER_ATTRS = ("mlflow_run_id", "device", "gpu", "worker", "train_s", "val_metrics", "best_epoch")


def _simulated_worker(url: str, study_name: str, ready: Any, go: Any, until: Any, out: Any) -> None:
    """One worker process: trials until the window closes; sends back its timings."""
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.storages._heartbeat import get_heartbeat_thread
    from optuna.trial import TrialState

    from tuner.study.storage import open_storage
    from tuner.study.summary import claimed, refuse_surplus

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Optuna's own loop (`optimize`) runs the heartbeat thread as this loop does.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
    asks: list[float] = []
    tells: list[float] = []
    errors: dict[str, int] = {}
    told = 0
    try:
        study = optuna.load_study(
            study_name=study_name,
            storage=open_storage(url),
            sampler=optuna.samplers.RandomSampler(seed=os.getpid()),
        )
    except Exception as e:
        out.put({"asks": [], "tells": [], "told": 0, "errors": {type(e).__name__: 1}})
        ready.set()
        return
    ready.set()
    go.wait()
    while time.time() < until.value:
        try:
            fail_stale_trials(study)
            start = time.perf_counter()
            trial = study.ask()
            asks.append(time.perf_counter() - start)
            with get_heartbeat_thread(trial._trial_id, study._storage):
                refuse_surplus(trial, 10**9)  # the read it makes; never refused here
                trial.suggest_categorical("seq_len", [8, 16])
                layers = trial.suggest_int("layers", 1, 2)
                for i in range(layers):
                    trial.suggest_int(f"units_{i}", 4, 8, step=4)
                trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True)
                for epoch in range(EPOCHS):
                    time.sleep(TRIAL_S / EPOCHS)
                    trial.report(1.0 / (epoch + 1), epoch)
                    trial.should_prune()
                for name in USER_ATTRS:
                    trial.set_user_attr(name, f"{name}-value")
            start = time.perf_counter()
            study.tell(trial, 0.1, state=TrialState.COMPLETE)
            claimed(study)
            tells.append(time.perf_counter() - start)
            told += 1
        except Exception as e:  # counted, and the worker goes on as the real one retries
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            time.sleep(0.5)
    out.put({"asks": asks, "tells": tells, "told": told, "errors": errors})


@contextlib.contextmanager
def _database(admin_url: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database, dropped afterwards (None: no server)."""
    if not admin_url:
        yield None
        return
    import sqlalchemy
    from sqlalchemy.engine import make_url

    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"b7_{uuid.uuid4().hex[:8]}"
    with admin.connect() as db:
        db.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as db:
            db.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@contextlib.contextmanager
def _proxy(database: str) -> Iterator[str]:
    """`tuner storage-proxy` in front of `database`; yields the workers' grpc:// URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tuner = str(Path(sys.executable).with_name("tuner"))
    server = subprocess.Popen(
        [tuner, "storage-proxy", "--storage", database, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if "workers pass --storage" not in line:
            raise RuntimeError(f"tuner storage-proxy did not start: {line!r}")
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


@contextlib.contextmanager
def _storage(backend: str, folder: Path, admin_url: str | None) -> Iterator[str | None]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'b7-{uuid.uuid4().hex[:8]}.db'}"
        return
    with _database(admin_url) as database:
        if database is None or backend == "postgresql":
            yield database
            return
        with _proxy(database) as url:
            yield url


def _measure(url: str, workers: int, window_s: float) -> dict[str, Any]:
    import optuna

    from tuner.study.storage import open_storage

    name = "b7"
    optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize")
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    until = ctx.Value("d", 0.0)
    readies = [ctx.Event() for _ in range(workers)]
    procs = [
        ctx.Process(target=_simulated_worker, args=(url, name, ready, go, until, out))
        for ready in readies
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    for ready in readies:
        ready.wait(timeout=600)
    start_up = time.perf_counter() - started
    until.value = time.time() + window_s
    go.set()
    reports = [out.get(timeout=window_s + 600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    asks = sorted(a for r in reports for a in r["asks"])
    tells = sorted(t for r in reports for t in r["tells"])
    errors: dict[str, int] = {}
    for r in reports:
        for kind, count in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    told = sum(r["told"] for r in reports)
    ideal = workers / TRIAL_S
    return {
        "workers": workers,
        "trials": told,
        "trials_per_s": round(told / window_s, 2),
        "ideal_per_s": round(ideal, 2),
        "efficiency": round(told / window_s / ideal, 3),
        "ask_p50_ms": _ms(asks, 0.5),
        "ask_p99_ms": _ms(asks, 0.99),
        "tell_p50_ms": _ms(tells, 0.5),
        "tell_p99_ms": _ms(tells, 0.99),
        "errors": errors,
        "start_up_s": round(start_up, 1),
    }


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if q == 0.5:
        return round(statistics.median(values) * 1000, 1)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK_WORKERS if quick else WORKERS
    window_s = QUICK_WINDOW_S if quick else WINDOW_S
    admin_url = os.environ.get("TUNER_TEST_POSTGRES_URL")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql", "grpc proxy"):
            for workers in sizes:
                with _storage(backend, Path(tmp), admin_url) as url:
                    if url is None:
                        row = {"backend": backend, "workers": workers, "not_run": "no PostgreSQL"}
                    else:
                        row = {"backend": backend, **_measure(url, workers, window_s)}
                print(f"B7 {row}", flush=True)
                rows.append(row)
    return {
        **environment(),
        "trial_s": TRIAL_S,
        "epochs": EPOCHS,
        "window_s": window_s,
        "results": rows,
    }
