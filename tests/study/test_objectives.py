"""Studies that minimise more than the validation objective (`--objectives`) or bound
what a champion may cost (`--constraint`, `--pick`): the champion rule, the Pareto
front, and a real two-objective study through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState, create_trial

from tests.conftest import SPACES, Finished, Stores
from tests.conftest import TWO_OBJECTIVE_BOUND as BOUND
from tuner.cli.main import main
from tuner.errors import InputError
from tuner.objectives import Bound, parse_bound
from tuner.paths import MODEL_FILE
from tuner.study import records
from tuner.study.summary import Standing, choose, pareto_front


def _s(number: int, value: float, latency: float, ok: bool = True) -> Standing:
    return Standing(number, value, {"latency_ms": latency}, ok)


def test_the_champion_is_the_best_feasible_trial_or_the_fastest_near_it() -> None:
    trials = [_s(0, 0.100, 5.0), _s(1, 0.090, 9.0, ok=False), _s(2, 0.1005, 1.0), _s(3, 0.2, 0.5)]
    assert choose(trials, None) == trials[0]  # #1 validates best but is over a bound
    # Within 1 % of 0.100: #0 and #2; #2 is faster. #3 is faster still but 2x worse.
    assert choose(trials, "latency_ms") == trials[2]
    assert choose([trials[1]], None) is None  # nothing feasible: no champion
    assert choose([_s(4, 0.1, 2.0), _s(5, 0.1, 2.0)], "latency_ms").number == 4  # tie: earlier


def test_a_bound_is_parsed_or_refused_in_one_line() -> None:
    assert parse_bound(" latency_ms <= 2.5 ") == Bound("latency_ms", 2.5)
    assert Bound("params", 100).excess({"params": 130.0}) == 30.0
    for text, words in [
        ("latency<=2", "'latency' is not measured"),
        ("params>=10", "expected NAME<=NUMBER"),
        ("size_kb<=big", "expected NAME<=NUMBER"),
        ("params<=nan", "expected NAME<=NUMBER"),
    ]:
        with pytest.raises(InputError, match=words) as caught:
            parse_bound(text)
        assert "\n" not in str(caught.value) and text in str(caught.value)


def test_the_front_keeps_feasible_trials_no_other_beats_in_every_objective() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"])
    points = [(0.10, 5.0, 0), (0.20, 1.0, 0), (0.15, 6.0, 0), (0.05, 9.0, 1), (0.12, 3.0, 0)]
    for value, latency, over in points:
        study.add_trial(
            create_trial(
                values=[value, latency],
                state=TrialState.COMPLETE,
                user_attrs={records.CONSTRAINT_EXCESS: [float(over)]},
            )
        )
    # #2 is beaten by #0 in both; #3 is over its bound.
    assert [t.number for t in pareto_front(study)] == [0, 4, 1]


@pytest.fixture(scope="module")
def study(two_objective_study: Finished) -> tuple[Stores, dict]:
    return two_objective_study.stores, two_objective_study.summary


@pytest.mark.slow
def test_a_two_objective_study_keeps_the_front_and_a_feasible_champion(
    study: tuple[Stores, dict],
) -> None:
    stores, summary = study
    loaded = optuna.load_study(study_name="mo", storage=stores.storage)
    assert loaded.metric_names == ["val_mse", "params"]
    done = loaded.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 8
    for t in done:  # both values recorded, the second the model's measured parameters
        assert len(t.values) == 2
        assert t.values[1] == t.user_attrs[records.MEASURED]["params"]
        assert t.user_attrs[records.CONSTRAINT_EXCESS] == [t.values[1] - BOUND]
    over = [t for t in done if t.values[1] > BOUND]
    ok = [t for t in done if t.values[1] <= BOUND]
    assert over and ok, "the seed's trials should fall on both sides of the bound"
    assert summary["infeasible"] == len(over)
    best = min(t.values[0] for t in ok)  # --pick params: the smallest model within 1 %
    champion = min((t for t in ok if t.values[0] <= best * 1.01), key=lambda t: t.values[1])
    assert summary["best_trial"] == champion.number
    assert summary["best_measured"] == {"params": champion.values[1]}
    front = [row["trial"] for row in summary["front"]]
    assert champion.number in front and not {t.number for t in over} & set(front)
    for row in summary["front"]:  # no feasible trial beats a front member in both
        assert not any(
            t.values[0] <= row["val_mse"] and t.values[1] <= row["params"]
            and (t.values[0], t.values[1]) != (row["val_mse"], row["params"])
            for t in ok
        )  # fmt: skip
    # Pruning is off: Optuna takes no intermediate values in a multi-objective study.
    assert all(not t.intermediate_values for t in done)

    client = MlflowClient(stores.tracking)
    version = client.get_model_version_by_alias("mo", "champion")
    assert version.run_id == champion.user_attrs[records.MLFLOW_RUN_ID]
    for t in done:
        run = client.get_run(t.user_attrs[records.MLFLOW_RUN_ID])
        assert run.data.tags["pareto_front"] == str(t.number in front).lower()
        assert run.data.tags["feasible"] == str(t.values[1] <= BOUND)
        assert run.data.metrics["params"] == t.values[1]
    experiment = client.get_experiment_by_name("mo")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]  # the invocation's
    assert len(parent) == 1
    artifacts = {a.path for a in client.list_artifacts(parent[0].info.run_id, "plots")}
    assert "plots/pareto_front.png" in artifacts


@pytest.mark.slow
def test_status_best_and_the_notebook_read_a_two_objective_study(
    study: tuple[Stores, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    stores, summary = study
    storage = ["--study", "mo", "--storage", stores.storage]
    assert main(["status", *storage]) == 0
    shown = capsys.readouterr().out
    assert "params" in shown and "over" in shown and "Pareto front" in shown
    assert main(["best", *storage]) == 0
    shown = capsys.readouterr().out
    assert f"best trial #{summary['best_trial']}" in shown
    assert shown.count("Pareto front: trial #") == len(summary["front"])

    from tuner import api

    result = api.open_study("mo", storage=stores.storage, tracking_uri=stores.tracking)
    figures = result.figures()
    assert {"pareto_front", "optimization_history", "param_importances"} <= set(figures)
    assert result.best_trial.number == summary["best_trial"]


@pytest.mark.slow
def test_a_front_member_exports_and_loads_in_plain_keras(
    study: tuple[Stores, dict], tmp_path: Path
) -> None:
    stores, summary = study
    others = [row["trial"] for row in summary["front"] if row["trial"] != summary["best_trial"]]
    chosen = (others or [summary["best_trial"]])[0]
    out = tmp_path / "bundle"
    argv = ["export", "--study", "mo", "--out", str(out), "--trial", str(chosen),
            "--storage", stores.storage, "--tracking-uri", stores.tracking]  # fmt: skip
    assert main(argv) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["trial"] == chosen
    model = keras.saving.load_model(out / MODEL_FILE)
    expected = {row["trial"]: row["params"] for row in summary["front"]}[chosen]
    assert model.count_params() == expected
    shape = tuple(d or 2 for d in model.inputs[0].shape)  # a batch of 2, as declared
    assert np.isfinite(model.predict(np.zeros(shape, "float32"), verbose=0)).all()


@pytest.mark.slow
def test_a_trial_without_a_model_is_refused_for_export(
    study: tuple[Stores, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stores, _ = study
    loaded = optuna.load_study(study_name="mo", storage=stores.storage)
    # A trial over the bound logs no model: it can be neither champion nor on the front.
    without = [t.number for t in loaded.trials if records.MODEL_URI not in t.user_attrs]
    assert without
    argv = ["export", "--study", "mo", "--out", str(tmp_path / "b"), "--trial", str(without[0]),
            "--storage", stores.storage, "--tracking-uri", stores.tracking]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--trial {without[0]}" in err[0] and "--refit" in err[0]


@pytest.mark.slow
def test_a_study_keeps_its_objectives_when_resumed(
    study: tuple[Stores, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    stores, _ = study
    argv = ["tune", "--study", "mo", "--space", str(SPACES / "tiny.py"), "--trials", "9",
            *stores.args()]  # fmt: skip
    assert main(argv) == 2  # without --objectives: refused before anything runs
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "objectives=['val_loss', 'params']" in err[0], err
    assert len(optuna.load_study(study_name="mo", storage=stores.storage).trials) == 8


@pytest.mark.slow
def test_the_analysis_notebook_runs_on_a_two_objective_study(
    study: tuple[Stores, dict], tmp_path: Path
) -> None:
    from tuner.cli.notebook import run_notebook

    stores, _ = study
    parameters = {"study": "mo", "storage": stores.storage, "tracking_uri": stores.tracking}
    executed = run_notebook(parameters, tmp_path / "out")
    figures = tmp_path / "out" / "figures-mo"
    for name in ("pareto_front", "optimization_history", "param_importances", "best_model"):
        assert (figures / f"{name}.png").stat().st_size > 5_000, name
    text = executed.read_text()
    assert '"output_type": "error"' not in text
