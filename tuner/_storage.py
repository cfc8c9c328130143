"""Opening the Optuna study storage (embedded SQLite by default)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from tuner._errors import InputError
from tuner._tracking import mask_secrets

HEARTBEAT_S = 20
GRACE_S = 60


def open_storage(url: str) -> RDBStorage:
    """An RDB storage with heartbeats, so trials of a dead process are failed and retried."""
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Wait for a lock instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or server
        raise InputError(
            f"--storage: cannot open study storage {mask_secrets(url)} ({type(e).__name__}); "
            "check the URL and that the database server is reachable."
        ) from None


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study, or exit 2 naming the studies the storage has."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise InputError(
            f"--study: no study named {name!r} in {mask_secrets(url)}; it has {names}."
        ) from None
