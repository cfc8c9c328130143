"""The keras-tuner engine and the epoch budget: KerasTuner's algorithms search the
same space module and are recorded like the Optuna engine (Optuna study, MLflow
parent run with nested trial runs, champion model)."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SPACES, Stores
from tuner.cli.main import main

pytestmark = pytest.mark.slow


SPACE = str(SPACES / "tiny_batches.py")


def _tune(stores: Stores, study: str, *extra: str) -> int:
    return main(
        ["tune", "--study", study, "--space", SPACE, "--patience", "2", *stores.args(), *extra]
    )


def _trials(stores: Stores, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=stores.storage).get_trials()


@pytest.mark.parametrize("algorithm", ["hyperband", "bayesian"])
def test_keras_tuner_engine_runs_the_space_within_the_epoch_budget(
    stores: Stores, algorithm: str
) -> None:
    budget = 8
    code = _tune(
        stores, "kt", "--engine", "keras-tuner", "--kt-tuner", algorithm,
        "--trials", "50", "--max-epochs", "3", "--epoch-budget", str(budget),
    )  # fmt: skip
    assert code == 0
    trials = _trials(stores, "kt")
    epochs = [int(t.user_attrs["epochs_run"]) for t in trials]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # No trial starts once the budget is spent: at most the last one ends past it.
    assert sum(epochs) >= budget and sum(epochs) - epochs[-1] < budget
    assert all(1 <= e <= 3 for e in epochs)
    assert {t.params["batch_size"] for t in trials} <= {128, 256}
    assert {t.params["seq_len"] for t in trials} <= {8, 16}

    client = MlflowClient(stores.tracking)
    experiment = client.get_experiment_by_name("kt")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["engine"] == "keras-tuner"
    assert parent.data.params["kt_tuner"] == algorithm
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(trials)
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"seq_len", "batch_size", "units_0", "learning_rate"} <= set(child.data.params)
        assert "val_mse" in child.data.metrics
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "epoch/val_loss")]
        assert len(steps) == int(child.data.tags["stopped_epoch"])
        assert steps == list(range(steps[0], steps[0] + len(steps)))  # Hyperband resumes later
    best = min(trials, key=lambda t: t.value)
    champion = client.get_model_version_by_alias("kt", "champion")
    assert champion.run_id == best.user_attrs["mlflow_run_id"]


def test_keras_tuner_random_search_stops_at_the_trial_count(stores: Stores) -> None:
    code = _tune(
        stores, "kt-random", "--engine", "keras-tuner", "--kt-tuner", "random",
        "--trials", "2", "--max-epochs", "2",
    )  # fmt: skip
    assert code == 0
    assert [t.state.name for t in _trials(stores, "kt-random")] == ["COMPLETE", "COMPLETE"]


def test_optuna_engine_honours_the_epoch_budget(stores: Stores) -> None:
    code = _tune(
        stores, "budget", "--trials", "50", "--max-epochs", "2", "--pruner", "none",
        "--epoch-budget", "5",
    )  # fmt: skip
    assert code == 0
    epochs = [int(t.user_attrs["epochs_run"]) for t in _trials(stores, "budget")]
    assert sum(epochs) >= 5 and sum(epochs) - epochs[-1] < 5


def test_a_study_keeps_its_engine(stores: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tune(stores, "same", "--trials", "1", "--max-epochs", "1") == 0
    capsys.readouterr()
    code = _tune(stores, "same", "--trials", "2", "--max-epochs", "1", "--engine", "keras-tuner")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "engine='optuna'" in err and "engine='keras-tuner'" in err and "--study" in err
    assert len(_trials(stores, "same")) == 1
