"""The multi-host rehearsal: a study on PostgreSQL behind the storage proxy, a real
MLflow tracking server (PostgreSQL backend, artifacts served by the server), eight
`tuner worker`s, each as on a host of its own. Two workers and the tracking server
are killed with SIGKILL mid-study; the server comes back, the study completes."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from tests.conftest import SPACES, MlflowServer, Stores, free_port, start_tuner
from tuner.study.storage import open_storage

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.serial]

WORKERS, TRIALS, KILLED = 8, 12, 2


@pytest.fixture
def databases(pg_url: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases: the study's and the tracking server's (Optuna and MLflow
    both keep an `alembic_version` table, so they cannot share one)."""
    admin = sqlalchemy.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    names = [f"rehearsal_{uuid.uuid4().hex[:8]}_{part}" for part in ("optuna", "mlflow")]
    with admin.connect() as db:
        for name in names:
            db.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield tuple(  # type: ignore[misc]
            make_url(pg_url).set(database=name).render_as_string(hide_password=False)
            for name in names
        )
    finally:
        with admin.connect() as db:
            for name in names:
                db.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


class _Remote(Stores):
    """The stores as every worker sees them: the proxy and the tracking server."""

    def __init__(self, root: Path, storage: str, tracking: str) -> None:
        super().__init__(root)
        object.__setattr__(self, "_urls", (storage, tracking))

    @property
    def storage(self) -> str:
        return self._urls[0]  # type: ignore[attr-defined,no-any-return]

    @property
    def tracking(self) -> str:
        return self._urls[1]  # type: ignore[attr-defined,no-any-return]


def _running(study: optuna.Study, at_least: int, workers: list, timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [
            t for t in study.get_trials(states=(TrialState.RUNNING,)) if "worker" in t.user_attrs
        ]
        if len(running) >= at_least:
            return running
        dead = [w for w in workers if w.poll() is not None]
        assert not dead, dead[0].communicate()
        time.sleep(0.5)
    raise AssertionError(f"fewer than {at_least} trials running after {timeout:.0f} s")


def test_eight_workers_through_the_proxy_survive_killed_workers_and_server(
    stores: Stores, databases: tuple[str, str]
) -> None:
    study_db, tracking_db = databases
    server = MlflowServer(stores.root, backend=tracking_db)
    server.start()
    port = free_port()
    proxy = start_tuner("storage-proxy", "--storage", study_db, "--port", str(port))
    try:
        assert proxy.stdout is not None
        assert f"workers pass --storage grpc://127.0.0.1:{port}" in proxy.stdout.readline()
        remote = _Remote(stores.root, f"grpc://127.0.0.1:{port}", server.uri)
        _rehearse(remote, server)
    finally:
        proxy.terminate()
        proxy.communicate(timeout=60)
        server.stop()


def _group_pids(leader: int, trials: list) -> list[int]:
    """The `tuner worker` (its group's leader) and the worker processes seen running
    trials in its group (gone now: read from the trials' `worker` attribute)."""
    return [leader, *(int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials)]


def _rehearse(remote: Stores, server: MlflowServer) -> None:
    name = "rehearsal"
    # Heartbeats every 3 s (a dead worker's trial is stale after 9 s: at 2 s and 6 s a
    # live worker starved of CPU beside eight others lost its trial once); MLflow calls
    # retried over about four minutes (8 retries), longer than the tracking server may
    # take to come back (MlflowServer.start waits up to 180 s). The requests the kill
    # cuts off mid-answer are asked again by the tracker (test_outage.py): those, not
    # a slow restart, failed this test in the CI of 1e41a32 and 2204295.
    env = {"TUNER_HEARTBEAT_INTERVAL": "3", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "8"}
    first = start_tuner(
        "tune", "--study", name, "--space", str(SPACES / "tiny.py"), "--trials", "1",
        "--max-epochs", "6", "--patience", "6", "--pruner", "none", *remote.args(), env=env,
    )  # fmt: skip
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err

    join = ["worker", "--study", name, *remote.args(), "--trials", str(TRIALS)]
    workers = [start_tuner(*join, env=env, session=True) for _ in range(WORKERS)]
    study = optuna.load_study(study_name=name, storage=open_storage(remote.storage))
    victims = _running(study, KILLED + 1, workers)[:KILLED]
    groups = {os.getpgid(int(t.user_attrs["worker"].rsplit(":", 1)[1])) for t in victims}
    assert len(groups) == KILLED
    for group in groups:  # the `tuner worker` and its worker process, as a host dies
        os.killpg(group, signal.SIGKILL)
    server.kill()
    time.sleep(3)
    server.start()

    killed = [w for w in workers if w.pid in groups]
    outputs = [(w, *w.communicate(timeout=900)) for w in workers]
    for w, _, err in outputs:
        if w in killed:
            assert w.returncode == -signal.SIGKILL
        else:
            assert w.returncode == 0, err
    # One more worker finds nothing to run and closes the killed workers' parent runs.
    last = start_tuner(*join)
    _, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    assert f"closed {KILLED} MLflow run(s) left RUNNING" in err

    study = optuna.load_study(study_name=name, storage=open_storage(remote.storage))
    states = [t.state for t in study.trials]
    finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == TRIALS, states  # exactly the trials wanted
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    # The killed workers' trials: found by their heartbeat, failed, retried once, finished.
    # A killed worker may have just ended the trial seen running and asked the next one,
    # so they are read from the study, not from the trials seen before the kill.
    pids = {str(p) for w in killed for p in _group_pids(w.pid, victims)}
    stale = [t for t in study.trials if any(r.system_attrs.get("failed_trial") == t.number
             for r in study.trials)]  # fmt: skip
    assert 1 <= len(stale) <= KILLED, [t.number for t in stale]
    for trial in stale:
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs.get("worker", ":").rsplit(":", 1)[1] in pids | {""}
        retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == trial.number]
        assert len(retries) == 1 and retries[0].params == trial.params
        assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    surplus = [t for t in study.trials if t.user_attrs.get("fail_reason", "")[:8] == "not run:"]
    assert len(surplus) <= WORKERS - 1
    assert len(study.trials) == TRIALS + len(stale) + len(surplus), states

    client = MlflowClient(remote.tracking)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    # One run per trial that got as far as creating it (a worker killed between its ask
    # and its run leaves a trial without one).
    with_run = sorted(t.number for t in study.trials if "mlflow_run_id" in t.user_attrs)
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == with_run
    assert all(t.number in with_run for t in study.trials if t.state in (TrialState.COMPLETE,))
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    params = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(params)) == len(params), "a configuration ran twice"

    by_id = {r.info.run_id: r for r in runs}
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED", "KILLED"}
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):  # nothing recorded was lost
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and "val_mse" in run.data.metrics
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server
    for trial in stale:  # its run ended as failed by the worker that found it stale
        if "mlflow_run_id" in trial.user_attrs:
            assert by_id[trial.user_attrs["mlflow_run_id"]].info.status == "FAILED"
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 + WORKERS + 1
    assert sorted(r.info.status for r in parents).count("KILLED") == KILLED

    # The champion registered once per improvement; the alias holds the best.
    versions = client.search_model_versions(f"name = '{name}'")
    registered = [v.run_id for v in versions]
    improved = {t.user_attrs["mlflow_run_id"] for t in study.trials if "model_uri" in t.user_attrs}
    assert len(registered) == len(set(registered)) and set(registered) == improved
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == study.best_trial.user_attrs["mlflow_run_id"]
    mlflow.set_tracking_uri(remote.tracking)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=tmp))
        assert list(local.rglob("model.keras")), "the champion's files download through the server"
