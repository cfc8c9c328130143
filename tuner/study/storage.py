"""Opening the Optuna study storage (embedded SQLite by default)."""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from tuner.config import make_folder, store_lock
from tuner.errors import InputError
from tuner.tracking.tracker import mask_secrets

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
        run_id = trial.user_attrs.get("mlflow_run_id")
        if self._tracking_uri and run_id:
            client = MlflowClient(self._tracking_uri)
            client.set_tag(run_id, "state", "failed")
            client.set_tag(run_id, "stop_reason", "worker died (no heartbeat); trial retried")
            client.set_terminated(run_id, "FAILED")
        self._retry(study, trial)


def open_storage(url: str, *, tracking_uri: str | None = None) -> RDBStorage:
    """An RDB storage with heartbeats, so trials of a dead process are failed and retried.

    With `tracking_uri`, the MLflow run of such a trial is ended as failed too.
    """
    engine_kwargs = {}
    guard: AbstractContextManager[None] = nullcontext()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        guard = store_lock(path)
        make_folder(path.parent, option="--storage")
        if path.exists() and not os.access(path, os.W_OK):
            raise InputError(
                f"--storage: the study storage {path} is read-only; make it writable, or copy "
                "it and pass the copy's --storage URL."
            )
        # Wait for a lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with guard:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval(),
                grace_period=3 * heartbeat_interval(),
                heartbeat_stale_trial_callback=_StaleTrial(tracking_uri),
            )
    except ImportError:
        raise InputError(
            f"--storage {mask_secrets(url)}: the database driver is not installed; "
            "for PostgreSQL install the postgres extra (pip install 'lstm-tuner[postgres]')."
        ) from None
    except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or server
        raise InputError(
            f"--storage: cannot open study storage {mask_secrets(url)} ({type(e).__name__}); "
            "check the URL and that the database server is reachable."
        ) from None


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study, or exit 2 naming the studies the storage has (a local
    storage file that does not exist is not created)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise InputError(
            f"--storage: no study storage at {url.removeprefix('sqlite:///')} (study {name!r}); "
            "run `tuner tune` first, or pass the --storage URL the study was created with."
        )
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise InputError(
            f"--study: no study named {name!r} in {mask_secrets(url)}; it has {names}."
        ) from None


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
