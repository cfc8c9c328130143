"""Opening the Optuna study storage (embedded SQLite by default)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
import sqlalchemy
from optuna.storages import (
    BaseStorage,
    GrpcStorageProxy,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import InputError, Opt
from tuner.stores import check_sqlite, lock_wait_s, make_folder, mask_secrets, store_lock
from tuner.study import records

# Heartbeats, their retry callback, metric names and multivariate TPE are marked
# experimental in Optuna; every command that opens a study uses them on purpose.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats ($TUNER_HEARTBEAT_INTERVAL, default 20).

    A trial whose heartbeat is three intervals old belongs to a dead worker.
    """
    value = os.environ.get("TUNER_HEARTBEAT_INTERVAL", "20")
    if not value.isdigit() or int(value) < 1:
        raise InputError(
            f"TUNER_HEARTBEAT_INTERVAL must be a whole number of seconds >= 1, but got {value!r}."
        )
    return int(value)


class _StaleTrial:
    """A dead worker's trial: end its MLflow run as failed, then retry it once."""

    def __init__(self, tracking_uri: str | None) -> None:
        self._tracking_uri = tracking_uri
        self._retry = RetryHeartbeatStaleTrialCallback(max_retry=1)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get(records.MLFLOW_RUN_ID)
        if self._tracking_uri and run_id:
            from mlflow.tracking import MlflowClient  # only here: a worker has it loaded

            from tuner.tracking.outage import AskedAgain

            client = AskedAgain(MlflowClient(self._tracking_uri))
            client.set_tag(run_id, "state", "failed")
            client.set_tag(run_id, "stop_reason", "worker died (no heartbeat); trial retried")
            client.set_terminated(run_id, "FAILED")
        self._retry(study, trial)


PROXY_SCHEME = "grpc://"
_PROXY_WAIT_S = 10
_HEARTBEAT_ATTR = "tuner:heartbeat"


class _ProxyStorage(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's gRPC storage proxy client, with the heartbeats the proxy lacks.

    Without them a killed worker's trial would stay RUNNING for ever, and the workers
    waiting for the last trials with it. The worker running a trial writes the time
    as a trial system attribute every interval; a running trial whose time is older
    than the grace period is stale (hosts' clocks must agree to well within it).
    """

    def __init__(self, *, host: str, port: int, tracking_uri: str | None) -> None:
        super().__init__(host=host, port=port)
        self._interval = heartbeat_interval()
        self._callback = _StaleTrial(tracking_uri)

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, _HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [
            t._trial_id
            for t in running
            if now - t.system_attrs.get(_HEARTBEAT_ATTR, now) > 3 * self._interval
        ]

    def get_heartbeat_interval(self) -> int:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> _StaleTrial:
        return self._callback


def _proxy_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 1 <= port <= 65535 or parts.path.strip("/"):
        raise InputError(
            f"{Opt('storage', mask_secrets(url))}: a storage proxy is addressed as "
            "grpc://HOST:PORT (port 1-65535), e.g. grpc://10.0.0.5:13000."
        )
    return parts.hostname, port


def _open_proxy(url: str, tracking_uri: str | None) -> _ProxyStorage:
    host, port = _proxy_address(url)
    storage = _ProxyStorage(host=host, port=port, tracking_uri=tracking_uri)
    try:
        storage.wait_server_ready(timeout=_PROXY_WAIT_S)
    except ConnectionError:
        raise InputError(
            f"{Opt('storage', url)}: no storage proxy answers at {host}:{port} within "
            f"{_PROXY_WAIT_S} s; start one there with `tuner storage-proxy --storage URL --host "
            f"{host} --port {port}`."
        ) from None
    return storage


def serve_proxy(url: str, *, host: str, port: int) -> None:
    """Run Optuna's gRPC storage proxy in front of the database at `url` until
    interrupted: workers then share one pool of database connections."""
    if url.startswith(PROXY_SCHEME):
        raise InputError(
            f"{Opt('storage', url)}: the proxy serves a database (postgresql://..., "
            "sqlite:///...), not another proxy."
        )
    if not 1 <= port <= 65535:
        raise InputError(f"{Opt('port')} must be 1-65535, but got {port}; pass a free port.")
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise InputError(
                f"{Opt('host', host)} {Opt('port', port)}: cannot listen there ({e.strerror}); "
                "pass a free port or an address of this host."
            ) from None
    storage = open_storage(url)
    print(
        f"storage proxy for {mask_secrets(url)} on {PROXY_SCHEME}{host}:{port}: "
        f"workers pass {Opt('storage', f'{PROXY_SCHEME}{host}:{port}')}",
        flush=True,
    )
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)


_CONNECT_TIMEOUT_S = 10  # seconds a database server has to answer


def open_storage(url: str, *, tracking_uri: str | None = None) -> BaseStorage:
    """An RDB storage (or a storage proxy, grpc://HOST:PORT) with heartbeats, so trials
    of a dead process are failed and retried.

    With `tracking_uri`, the MLflow run of such a trial is ended as failed too.
    """
    if url.startswith(PROXY_SCHEME):
        return _open_proxy(url, tracking_uri)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):  # an unroutable host must not hang for minutes
        engine_kwargs = {"connect_args": {"connect_timeout": _CONNECT_TIMEOUT_S}}
    guard: AbstractContextManager[None] = nullcontext()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        guard = store_lock(path)
        make_folder(path.parent, option="storage")
        check_storage_file(url)
        if path.exists() and not os.access(path, os.W_OK):
            raise InputError(
                f"{Opt('storage')}: the study storage {path} is read-only; make it writable, or "
                f"copy it and pass the copy's {Opt('storage', 'URL')}."
            )
        # Wait for a lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": lock_wait_s()}}
    try:
        with guard:
            storage = RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval(),
                grace_period=3 * heartbeat_interval(),
                heartbeat_stale_trial_callback=_StaleTrial(tracking_uri),
            )
            if url.startswith("sqlite:///"):
                _write_ahead(storage)
            return storage
    except ImportError:
        raise InputError(
            f"{Opt('storage', mask_secrets(url))}: the database driver is not installed; for "
            "PostgreSQL install the postgres extra (pip install 'lstm-tuner[postgres]')."
        ) from None
    except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or server
        raise InputError(
            f"{Opt('storage')}: cannot open study storage {mask_secrets(url)} "
            f"({type(e).__name__}); check the URL and that the database server is reachable."
        ) from None


def _write_ahead(storage: RDBStorage) -> None:
    """SQLite in write-ahead-log mode with normal syncing: a commit costs no fsync
    (26 ms each here in the default mode, and a trial commits at every epoch); the
    file cannot be corrupted by a crash, and a power cut loses at most the last
    commits. The mode is kept in the file; syncing is set per connection."""

    def _normal_sync(connection: Any, _: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(storage.engine, "connect", _normal_sync)
    storage.engine.dispose()  # connections made before the listener
    with contextlib.suppress(sqlalchemy.exc.OperationalError), storage.engine.connect() as db:
        db.exec_driver_sql("PRAGMA journal_mode=WAL")


def check_storage_file(url: str) -> None:
    """A local storage file that exists must be an Optuna storage (see check_sqlite); a
    database server must answer (opened once): checked before the MLflow store is
    created, so a storage that fails leaves nothing behind."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        check_sqlite(path, option="storage", table="studies", kind="an Optuna study storage")
        return
    storage = open_storage(url)
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study, or exit 2 naming the studies the storage has (a local
    storage file that does not exist is not created)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise InputError(
            f"{Opt('storage')}: no study storage at {url.removeprefix('sqlite:///')} (study "
            f"{name!r}); run `tuner tune` first, or pass the {Opt('storage', 'URL')} the study "
            "was created with."
        )
    storage = open_storage(url)
    refuse_foreign(storage, name, url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise InputError(
            f"{Opt('study')}: no study named {name!r} in {mask_secrets(url)}; it has {names}."
        ) from None


def refuse_foreign(storage: optuna.storages.BaseStorage, name: str, url: str) -> None:
    """A study of that name the tuner did not create (another tool's, or one with
    several objectives not made by `--objectives`) is refused with one line, never
    adopted or misread."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return
    where = f"{Opt('study', name)}: the study of that name in {mask_secrets(url)}"
    directions = storage.get_study_directions(study_id)
    ours = any(
        records.IDENTITY in attrs
        for attrs in (
            storage.get_study_system_attrs(study_id),
            storage.get_study_user_attrs(study_id),
        )
    )
    minimised = all(d == optuna.study.StudyDirection.MINIMIZE for d in directions)
    if len(directions) != 1 and not (ours and minimised):
        raise InputError(
            f"{where} has {len(directions)} objectives and was not made by `tuner tune "
            f"--objectives`; pass another {Opt('study')} name."
        )
    trials = len(storage.get_all_trials(study_id, deepcopy=False))
    if not ours and (trials or directions[0] != optuna.study.StudyDirection.MINIMIZE):
        raise InputError(
            f"{where} was not created by the tuner (no '{records.IDENTITY}' attribute; it "
            f"{directions[0].name.lower()}s, {trials} trials); pass another {Opt('study')} name, "
            "or remove it with `optuna delete-study`."
        )


def has_trials(name: str, url: str) -> bool:
    """Whether the storage holds a study of that name with trials recorded."""
    storage = open_storage(url)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return bool(storage.get_all_trials(study_id, deepcopy=False))


def latest_study(url: str) -> str:
    """Name of the study started most recently in the storage."""
    summaries = optuna.get_all_study_summaries(open_storage(url), include_best_trial=False)
    started = [(s.datetime_start, s.study_name) for s in summaries if s.datetime_start]
    if not started:
        raise InputError(f"{mask_secrets(url)} holds no study with trials; run `make tune` first.")
    return max(started)[1]
