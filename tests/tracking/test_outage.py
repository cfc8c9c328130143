"""A tracking server that dies mid-study: bounded retries, one line, exit 1, the
study's Optuna records intact, and the runs left open closed by the next run."""

from __future__ import annotations

import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import Stores, free_port, mlflow_server, start_tuner, tiny_tune_args
from tuner.tracking.tracker import HTTP_RETRIES

pytestmark = pytest.mark.slow


def _finished(stores: Stores) -> int:
    try:
        study = optuna.load_study(study_name="tiny", storage=stores.storage)
    except KeyError:
        return 0
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


def test_a_dead_tracking_server_stops_the_study_in_seconds_and_nothing_is_lost(
    stores: Stores,
) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    args = [*tiny_tune_args(stores, trials=40), "--tracking-uri", uri]
    with mlflow_server(stores.root, port):
        tune = start_tuner(*args)
        deadline = time.monotonic() + 300
        while _finished(stores) < 2:
            assert tune.poll() is None and time.monotonic() < deadline, tune.communicate()
            time.sleep(0.5)
    killed = time.monotonic()  # the server is stopped; the study is still running
    _, err = tune.communicate(timeout=300)
    took = time.monotonic() - killed
    assert tune.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"tuner: error: the MLflow tracking server {uri} stopped answering")
    assert f"({HTTP_RETRIES['MLFLOW_HTTP_REQUEST_MAX_RETRIES']} retries over 15 s)" in last
    assert "Traceback" not in err
    # Seconds, not MLflow's default minutes: a trial's write and the parent's close
    # each retry for 15 s.
    assert took < 120, f"took {took:.0f} s to stop after the server died"
    print(f"stopped {took:.1f} s after the tracking server died")  # shown with pytest -s

    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    assert len([s for s in states if s != TrialState.FAIL]) >= 2  # kept
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the trial whose records could not be written is failed"
    assert failed[-1].user_attrs["fail_reason"].startswith("not recorded in MLflow: the MLflow")

    # The server back: the next run finishes the study and closes what was left open.
    with mlflow_server(stores.root, port):
        done = _finished(stores)
        rerun = start_tuner(*tiny_tune_args(stores, trials=done + 1), "--tracking-uri", uri)
        _, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, err
        assert "closed" in err and "left RUNNING by processes that died" in err
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("tiny")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        assert len(runs) > 3
        assert all(r.info.status != "RUNNING" for r in runs), [r.info.status for r in runs]
        assert "KILLED" in {r.info.status for r in runs}
