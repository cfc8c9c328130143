"""`--fuse K` end to end: groups of trials trained as one JAX program inside a real
study, each member its own Optuna trial and MLflow run, the champion served as usual."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Stores, made_once, tiny_tune_args
from tests.engine.test_study_e2e import run_cli_json
from tuner.engine.fused_trials import DOUBLING_GAIN
from tuner.study.records import FUSED_GROUP, FUSED_MEMBERS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None, reason="fused trials need JAX (the jax extra)"
    ),
]


def _fused_study(
    tmp_path_factory: pytest.TempPathFactory, study: str, fuse: str
) -> tuple[Stores, dict]:
    """A tiny study of 4 trials with `--fuse FUSE` (JAX workers, real SQLite stores),
    made once per test session; its stores and JSON summary."""

    def build(folder: Path) -> None:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("KERAS_BACKEND", "jax")  # the workers' backend
            args = tiny_tune_args(Stores(folder), study=study, trials=4)
            summary = run_cli_json([*args, "--fuse", fuse, "--json"])
        (folder / "summary.json").write_text(json.dumps(summary))

    folder = made_once(tmp_path_factory, f"e2e-fuse-{study}", build)
    return Stores(folder), json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def fused(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stores, dict]:
    return _fused_study(tmp_path_factory, "fused", "2")


def test_members_of_a_group_share_the_structure_and_differ_in_their_rate(
    fused: tuple[Stores, dict],
) -> None:
    stores, summary = fused
    trials = optuna.load_study(study_name="fused", storage=stores.storage).trials
    assert summary["n_complete"] + summary["n_pruned"] == 4
    assert summary["fused"] == {"trials": 4, "groups": 2}  # said in the summary
    groups: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        groups.setdefault(trial.user_attrs[FUSED_GROUP], []).append(trial)
        assert trial.user_attrs[FUSED_MEMBERS] == 2
    assert sorted(len(g) for g in groups.values()) == [2, 2]
    for leader, members in groups.items():
        assert min(t.number for t in members) == int(leader)  # named after its first trial
        shapes = [{k: v for k, v in t.params.items() if k != "learning_rate"} for t in members]
        assert shapes[0] == shapes[1]
        assert members[0].params["learning_rate"] != members[1].params["learning_rate"]


def test_each_member_has_its_own_run_curve_and_the_champion_serves(
    fused: tuple[Stores, dict],
) -> None:
    import mlflow.pyfunc
    import pandas as pd

    stores, summary = fused
    client = MlflowClient(stores.tracking)
    experiment = client.get_experiment_by_name("fused")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    children = [
        r for r in runs if "mlflow.parentRunId" in r.data.tags and "trial_number" in r.data.tags
    ]
    assert len(children) == 4 and len({r.info.run_id for r in children}) == 4
    for child in children:
        assert child.data.tags[FUSED_MEMBERS] == "2" and FUSED_GROUP in child.data.tags
        rounds = int(child.data.tags["stopped_epoch"])
        history = client.get_metric_history(child.info.run_id, "epoch/val_loss")
        assert [m.step for m in history] == list(range(1, rounds + 1)) and rounds >= 1
        if child.data.tags["state"] == "complete":
            assert child.data.metrics["val_mse"] > 0

    champion = client.get_model_version_by_alias("fused", "champion")
    best = next(r for r in children if r.data.tags["trial_number"] == str(summary["best_trial"]))
    assert champion.run_id == best.info.run_id
    mlflow.set_tracking_uri(stores.tracking)
    model = mlflow.pyfunc.load_model("models:/fused@champion")
    seq_len = summary["best_params"]["seq_len"]
    dates = pd.date_range("2000-01-01", periods=seq_len, freq="MS").strftime("%Y-%m-%d")
    history = pd.DataFrame({"date": dates, "co2": 370.0})  # raw rows, as served
    forecast = model.predict(history)
    assert len(forecast) == 13 and forecast["co2"].notna().all()


@pytest.fixture(scope="module")
def auto(tmp_path_factory: pytest.TempPathFactory) -> tuple[Stores, dict]:
    return _fused_study(tmp_path_factory, "auto", "auto")


def test_fuse_auto_times_doublings_and_groups_by_the_size_it_kept(
    auto: tuple[Stores, dict],
) -> None:
    stores, summary = auto
    measured = summary["fuse_measured"]  # a study record, in the summary
    speeds = {int(k): v for k, v in measured["member_steps_per_s"].items()}
    sizes = sorted(speeds)
    assert sizes == [2**i for i in range(len(sizes))] and len(sizes) >= 2, speeds
    size = measured["size"]
    assert size in speeds
    for k in sizes[1:]:  # every doubling kept gained DOUBLING_GAIN; a timed one past it did not
        gained = speeds[k] >= DOUBLING_GAIN * speeds[k // 2]
        assert gained == (k <= size), (k, speeds, size)
    trials = optuna.load_study(study_name="auto", storage=stores.storage).trials
    assert summary["n_complete"] + summary["n_pruned"] == 4
    first = [t for t in trials if t.user_attrs[FUSED_GROUP] == "0"]
    assert len(first) == min(size, 4)  # the first group: the size kept (the study's 4 at most)
    assert all(t.user_attrs[FUSED_MEMBERS] <= size for t in trials)
