"""End to end: a real study on the built-in dataset, recorded in a real MLflow store."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, Stores, made_once, start_tuner, tiny_tune_args
from tuner.cli.main import main
from tuner.study import records

pytestmark = pytest.mark.slow


def _runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} was not created"
    return client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stores, dict]:
    """One tiny finished study shared by the read-only tests of this module (run once
    per test run, shared by the xdist workers)."""

    def build(folder: Path) -> None:
        summary = run_cli_json([*tiny_tune_args(Stores(folder), trials=4), "--json"])
        (folder / "summary.json").write_text(json.dumps(summary))

    folder = made_once(tmp_path_factory, "e2e-finished", build)
    return Stores(folder), json.loads((folder / "summary.json").read_text())


def run_cli_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0
    return json.loads(out.getvalue())


def test_summary_reports_validation_test_and_baselines(finished: tuple[Stores, dict]) -> None:
    _, summary = finished
    assert summary["study"] == "tiny"
    assert summary["n_complete"] + summary["n_pruned"] == 4
    for split in ("best_val", "best_test"):
        assert set(summary[split]) == {"mse", "mae", "mse_orig", "mae_orig"}
        assert summary[split]["mse"] > 0
    assert {
        "persistence_val",
        "persistence_test",
        "seasonal_naive_val",
        "seasonal_naive_test",
    } <= set(summary["baselines"])
    assert summary["dataset"]["rows"] == 2284
    assert summary["dataset"]["split_borders"] == [1598, 1940, 2284]
    stores, _ = finished
    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    assert study.metric_names == ["val_mse"]  # the objective's name in the dashboard


def test_mlflow_layout_parent_children_epochs_and_champion(finished: tuple[Stores, dict]) -> None:
    stores, summary = finished
    client = MlflowClient(stores.tracking)
    runs = _runs(client, "tiny")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # model training
    # The link printed at the end opens the runs table with the objective's column.
    assert summary["mlflow_ui"] == (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=tuner"
    )
    view = json.loads(experiment.tags["mlflow.sharedViewState.tuner"])
    assert "metrics.`val_mse`" in view["selectedColumns"]
    # Artifacts live beside the store, whatever folder the command ran from.
    beside = (stores.root / "artifacts" / "tiny").resolve().as_uri()
    assert experiment.artifact_location == beside
    assert all(r.info.artifact_uri.startswith(beside + "/") for r in runs)
    assert Path.cwd() != stores.root  # the study ran from another folder
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["trials"] == "4"
    assert parent.data.params["dataset.sha256"] == summary["dataset"]["sha256"]
    assert "baseline_persistence_test_mse" in parent.data.metrics
    assert parent.data.metrics["best_test_mse"] == pytest.approx(summary["best_test"]["mse"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "summary.json", "dataset_fingerprint.json", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots
    assert {
        "plots/contour_top_two.png",
        "plots/learning_curves.png",
        "plots/best_model.png",
    } <= plots
    assert "plots/study_plots.html" in plots

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    for child in children:
        state = child.data.tags["state"]
        assert state in ("complete", "pruned")
        assert child.info.status == "FINISHED"
        assert {"seq_len", "layers", "learning_rate", "units_0"} <= set(child.data.params)
        params = child.data.params
        number = int(child.data.tags["trial_number"])
        # The run says which trial and which architecture, e.g. "t002 lstm 2x16 w26".
        widths = [params[f"units_{i}"] for i in range(int(params["layers"]))]
        units = f"{len(widths)}x{widths[0]}" if len(set(widths)) == 1 else "/".join(widths)
        assert child.info.run_name == f"t{number:03d} lstm {units} w{params['seq_len']}"
        epochs = int(child.data.tags["stopped_epoch"])
        history = client.get_metric_history(child.info.run_id, "epoch/val_loss")
        assert [m.step for m in history] == list(range(1, epochs + 1))  # one point per epoch
        assert len(client.get_metric_history(child.info.run_id, "epoch/loss")) == epochs
        for name, value in child.data.metrics.items():  # results: one point, at step 0
            if not name.startswith("epoch/"):
                points = client.get_metric_history(child.info.run_id, name)
                assert [(m.step, m.value) for m in points] == [(0, value)], name
        if state == "complete":
            assert "val_mse" in child.data.metrics

    champion = client.get_model_version_by_alias("tiny", "champion")
    best_run = next(
        r for r in children if r.data.tags["trial_number"] == str(summary["best_trial"])
    )
    assert champion.run_id == best_run.info.run_id
    assert best_run.data.metrics["test_mse"] == pytest.approx(summary["best_test"]["mse"])
    # The registered model's metrics are the trial's reported ones, not its first epoch's.
    # The parent run points to the champion; the registered version says what it is.
    assert parent.data.tags["champion_trial"] == str(summary["best_trial"])
    assert parent.data.tags["champion_run_id"] == best_run.info.run_id
    assert f"trial {summary['best_trial']} of study tiny: val_mse" in champion.description
    assert champion.tags["dataset_sha256"] == summary["dataset"]["sha256"]
    # The data is the parent run's logged input: name and file digest.
    inputs = client.get_run(parent.info.run_id).inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in inputs] == [
        ("co2", summary["dataset"]["sha256"][:36])
    ]
    model_id = champion.source.removeprefix("models:/")  # models:/m-...: the logged model
    logged = {m.key: m.value for m in client.get_logged_model(model_id).metrics}
    assert logged["val_mse"] == pytest.approx(summary["best_val"]["mse"])
    assert not any(key.startswith("epoch/") for key in logged)


def test_champion_model_loads_and_predicts(finished: tuple[Stores, dict], tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd

    stores, summary = finished
    mlflow.set_tracking_uri(stores.tracking)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mlflow.pyfunc.load_model("models:/tiny@champion")
    assert not [w for w in caught if "type hint" in str(w.message)]
    seq_len = summary["best_params"]["seq_len"]
    # Raw history in (the example it was logged with: validation rows with dates, in
    # ppm), the forecast out in ppm with its dates.
    local = Path(mlflow.artifacts.download_artifacts("models:/tiny@champion", dst_path=tmp_path))
    example = json.loads((local / "serving_input_example.json").read_text())
    history = pd.DataFrame(**example["dataframe_split"])
    assert list(history.columns) == ["date", "co2"] and len(history) == seq_len
    forecast = model.predict(history)
    assert list(forecast.columns) == ["date", "step", "co2"] and len(forecast) == 13
    assert forecast["date"].iloc[0] > history["date"].iloc[-1]
    assert 300 < float(forecast["co2"].median()) < 400
    # What travels with it: requirements from the public index (no pin on this
    # package), whose serving code is copied beside the model.
    requirements = (local / "requirements.txt").read_text()
    assert "keras==" in requirements and "lstm-tuner" not in requirements
    # Every requirement resolves on the package index this machine reaches.
    uv = Path(sys.executable).with_name("uv")
    resolved = subprocess.run(
        [str(uv), "pip", "compile", "--quiet", "--python-version", "3.11",
         str(local / "requirements.txt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    assert "tensorflow==" in resolved.stdout and "lstm-tuner" not in resolved.stdout
    assert (local / "code" / "tuner" / "model" / "serving.py").is_file()
    assert model.metadata.signature is not None


def test_status_and_best_read_the_finished_study(
    finished: tuple[Stores, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    stores, summary = finished
    assert main(["status", "--study", "tiny", "--storage", stores.storage, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["number"] for r in rows] == [0, 1, 2, 3]
    assert all(r["state"] in ("complete", "pruned") and r["epochs"] >= 1 for r in rows)

    assert main(["best", "--study", "tiny", "--storage", stores.storage, "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["best_trial"] == summary["best_trial"]
    assert best["best_test"] == summary["best_test"]

    assert main(["status", "--study", "tiny", "--storage", stores.storage]) == 0
    table = capsys.readouterr().out
    assert "4 trials" in table
    assert "val_mse" in table  # one objective column, named
    best_line = next(line for line in table.splitlines() if f" {summary['best_trial']}* " in line)
    assert "complete" in best_line  # the best trial is starred


def test_optuna_studies_lists_the_study_in_one_short_line(finished: tuple[Stores, dict]) -> None:
    """The study's records (configuration, data fingerprint, baselines, ...) are system
    attributes: `optuna studies` shows no attribute column of 2,600 characters."""
    stores, _ = finished
    optuna_cli = Path(sys.executable).with_name("optuna")
    shown = subprocess.run(
        [str(optuna_cli), "studies", "--storage", stores.storage],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "tiny" in shown and "user_attrs" not in shown, shown
    assert max(len(line) for line in shown.splitlines()) < 160, shown
    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    assert study.user_attrs == {}
    assert records.get(study, records.CONFIG)["max_epochs"] == 3  # read back from the records


NATIVE_LOG = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]")


def test_no_command_prints_library_warnings(finished: tuple[Stores, dict], tmp_path: Path) -> None:
    """As a user runs them: no ExperimentalWarning (or any library warning) on stderr.
    On a copy of the shared study: `tune` and `worker` add parent runs to it."""
    shutil.copytree(finished[0].root, tmp_path / "stores", ignore=shutil.ignore_patterns("*.lock"))
    stores = Stores(tmp_path / "stores")
    study = ("--study", "tiny", "--storage", stores.storage)
    bundle = tmp_path / "bundle"
    history = ROOT / "datasets" / "mauna_loa_co2_weekly.csv"
    to_bundle = ("--out", str(bundle), "--format", "keras,mlflow")
    # Rounds of commands; those of one round only read, so they run side by side.
    rounds: list[list[tuple[str, ...]]] = [
        [("status", *study), ("best", *study), ("datasets",), ("spaces",)],
        [("tune", *tiny_tune_args(stores, trials=4)[1:])],  # finished: nothing to run
        [("worker", *study, "--tracking-uri", stores.tracking, "--trials", "4")],  # nothing to run
        [("export", *study, "--tracking-uri", stores.tracking, *to_bundle)],
        [("predict", "--model", str(bundle), "--input", str(history))],
    ]
    for commands in rounds:
        started = [(command, start_tuner(*command)) for command in commands]
        for command, proc in started:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, (command, err[-2000:])
            assert "Warning" not in err, (command, err)
            # Nor native start-up lines (absl's "I0000 00:00:... cudart_stub.cc:31] ...").
            native = [line for line in err.splitlines() if NATIVE_LOG.match(line)]
            assert not native and "absl::InitializeLog" not in err, (command, native)


def test_resume_runs_only_missing_trials(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(tiny_tune_args(stores, trials=4)) == 0
    capsys.readouterr()
    assert main(tiny_tune_args(stores, trials=4)) == 0
    assert "nothing to run" in capsys.readouterr().err
    assert main(tiny_tune_args(stores, trials=6)) == 0
    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    assert len(study.trials) == 6
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 6, "a resumed study drew an earlier configuration again"
    runs = _runs(MlflowClient(stores.tracking), "tiny")
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 3
