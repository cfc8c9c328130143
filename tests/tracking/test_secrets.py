"""No secret leaves the process: one masking function for every URL that is
printed, logged or stored; checked on its own and against a real MLflow server."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Stores, mlflow_server, tiny_tune_args
from tuner.cli.main import main
from tuner.stores import mask_secrets

CANARY = "s3cr3t-canary"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
        (f"http://u:{CANARY}@127.0.0.1:5000", "http://u:***@127.0.0.1:5000"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),  # "@" inside
        ("postgresql://host/db?user=u&password=pw&sslmode=require",
         "postgresql://host/db?user=u&password=***&sslmode=require"),
        ("https://host/api?token=abc", "https://host/api?token=***"),
        ("'sqlite:///studies/optuna.db' and 'x'", "'sqlite:///studies/optuna.db' and 'x'"),
        ("in postgresql://a:b@h/db, then ok@x", "in postgresql://a:***@h/db, then ok@x"),
    ],
)  # fmt: skip
def test_mask_secrets_hides_passwords_and_secret_query_parameters(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_appears_nowhere(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    with mlflow_server(stores.root) as port:
        uri = f"http://user:{CANARY}@127.0.0.1:{port}"
        args = [*tiny_tune_args(stores, trials=2), "--tracking-uri", uri, "--json"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(args) == 0
        summary = json.loads(out.getvalue())  # stdout is the JSON summary alone
        assert summary["n_complete"] + summary["n_pruned"] == 2
        printed = out.getvalue() + capsys.readouterr().err
        assert CANARY not in printed
        client = MlflowClient(f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("tiny")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 3  # the parent and two trials
        for run in runs:
            assert CANARY not in json.dumps([run.data.params, run.data.tags])
            for artifact in client.list_artifacts(run.info.run_id):
                if artifact.path.endswith(".json"):
                    local = client.download_artifacts(run.info.run_id, artifact.path)
                    assert CANARY not in Path(local).read_text(), artifact.path
    # Nor in the study's Optuna attributes (its configuration, every trial's records)
    # nor in any log file the run wrote.
    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    stored = [
        study.user_attrs,
        optuna.storages.get_storage(stores.storage).get_study_system_attrs(study._study_id),
    ]
    stored += [[t.user_attrs, t.system_attrs, t.params] for t in study.trials]
    assert CANARY not in json.dumps(stored, default=str)
    assert "tracking_uri" in json.dumps(stored, default=str)  # it is stored, masked
    for log in Path.cwd().rglob("*.log"):
        assert CANARY not in log.read_text(errors="replace"), log
