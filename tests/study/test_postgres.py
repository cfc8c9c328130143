"""PostgreSQL as the shared study storage: a real server (.ci/postgres.sh starts it)."""

from __future__ import annotations

import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from tests.conftest import Stores, start_tuner, tiny_tune_args
from tests.study.test_scale_out import _check_study

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _pg_stores(stores: Stores, url: str) -> Stores:
    class PgStores(Stores):
        @property
        def storage(self) -> str:
            return url

    return PgStores(stores.root)


def test_two_workers_on_postgres_finish_exactly_the_trials(stores: Stores, pg_url: str) -> None:
    pg = _pg_stores(stores, pg_url)
    name = f"pg-{uuid.uuid4().hex[:8]}"
    first = start_tuner(*tiny_tune_args(pg, study=name, trials=1))
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err

    workers = [
        start_tuner("worker", "--study", name, "--storage", pg_url, "--trials", "7")
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
    study = optuna.load_study(study_name=name, storage=pg_url)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 7, [t.state for t in study.trials]
    assert len({t.number for t in study.trials}) == len(study.trials)
    _check_study(pg, name, trials=7, workers=1)


def test_storage_password_appears_nowhere(stores: Stores, pg_url: str) -> None:
    pg = _pg_stores(stores, pg_url)
    password = make_url(pg_url).password
    assert password
    name = f"secret-{uuid.uuid4().hex[:8]}"
    proc = start_tuner(*tiny_tune_args(pg, study=name, trials=2), "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert password not in out and password not in err
    assert "***" in out  # the summary shows the storage URL, masked
    leaks = [
        str(path)
        for path in Path(stores.root).rglob("*")
        if path.is_file() and password.encode() in path.read_bytes()
    ]
    assert leaks == [], f"password found in {leaks}"
    assert (Path(stores.root) / "mlflow.db").exists()
