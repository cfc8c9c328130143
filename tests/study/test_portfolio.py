"""The portfolio of known-good configurations and the family-aware first rung: real
spaces replayed, a real Optuna study, a real (tiny) study trained end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SPACES, Stores
from tuner.cli.main import main
from tuner.config import TuneConfig
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.model.params import FAMILY_MIN_SHARE, space_min_rounds
from tuner.space import load_space, probe_space
from tuner.study import records
from tuner.study.portfolio import portfolio
from tuner.study.setup import study_pruner


def _italy_info():  # type: ignore[no-untyped-def]
    return load_dataset(resolve_dataset("italy_power_demand")).info


def test_the_default_classification_space_expresses_both_lstm_fcn_entries() -> None:
    first = portfolio(load_space("classification"), _italy_info())
    names = [name for _, name in first.configurations]
    assert names == ["lstm-fcn-2017-half", "lstm-fcn-2017", "lstm-fcn-2017-128"]  # cheapest first
    params, _ = first.configurations[1]
    assert params["conv_layers"] == 3 and params["conv_filters"] == 128
    assert params["dim_shuffle"] and params["batch_size"] == 16 and params["units_0"] == 16
    assert "pool" not in params  # 24 steps: no pooling offered, the pooled entry left out
    assert first.lines == []


def test_a_long_series_gets_the_pooled_entry_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 600, 1)).astype(np.float32)
    np.savez(tmp_path / "long.npz", X=x, y=np.arange(60) % 3)
    info = load_dataset(resolve_dataset(str(tmp_path / "long.npz"))).info
    assert info.pool_choices() == [1, 2, 4]  # 600 steps: pooled down to 150 at most
    first = portfolio(load_space("classification"), info)
    names = [name for _, name in first.configurations]
    assert names == ["lstm-fcn-2017-pool4", "lstm-fcn-2017-half", "lstm-fcn-2017",
                     "lstm-fcn-2017-128"]  # fmt: skip
    assert [params["pool"] for params, _ in first.configurations] == [4, 1, 1, 1]
    assert first.lines == []
    # A space of the user's without pooling cannot express it: skipped, saying why.
    mine = portfolio(load_space(str(SPACES / "big_batch_classifier.py")), info)
    assert any(line.startswith("portfolio: skipped lstm-fcn-2017-pool4") and
               "pool is not in the space" in line for line in mine.lines)  # fmt: skip


def test_variable_length_data_drops_what_the_space_does_not_ask_for() -> None:
    info = load_dataset(resolve_dataset("japanese_vowels")).info
    first = portfolio(load_space("classification"), info)
    params, name = first.configurations[0]
    assert name == "lstm-fcn-2017-half" and "dim_shuffle" not in params and params["seq_norm"]


@pytest.mark.parametrize(
    ("space", "reason"),
    [
        ("recurrent_classifier.py", "conv_layers is not in the space"),
        ("big_batch_classifier.py", "batch_size=16 is outside [32, 64]"),
    ],
)
def test_an_entry_the_space_cannot_express_is_skipped_with_the_reason(
    space: str, reason: str
) -> None:
    first = portfolio(load_space(str(SPACES / space)), _italy_info())
    assert first.configurations == []
    assert len(first.lines) == 3
    assert first.lines[0].startswith("portfolio: skipped lstm-fcn-2017-half, space")
    assert reason in first.lines[0]


def test_forecasting_has_no_entries_so_its_studies_start_as_before() -> None:
    info = load_dataset(resolve_dataset("co2")).info
    assert portfolio(load_space("forecasting"), info).configurations == []


def test_a_portfolio_trial_runs_first_and_is_named_in_mlflow(stores: Stores) -> None:
    argv = [
        "tune", "--dataset", "italy_power_demand", "--study", "folio", "--trials", "1",
        "--max-epochs", "1", "--cv", "0", *stores.args(),
    ]  # fmt: skip
    assert main(argv) == 0
    trial = optuna.load_study(study_name="folio", storage=stores.storage).trials[0]
    assert trial.user_attrs[records.PORTFOLIO] == "lstm-fcn-2017-half"
    assert trial.params["conv_filters"] == 64 and trial.state.name == "COMPLETE"
    client = MlflowClient(stores.tracking)
    experiment = client.get_experiment_by_name("folio")
    runs = client.search_runs([experiment.experiment_id], "tags.portfolio = 'lstm-fcn-2017-half'")
    assert len(runs) == 1


def test_a_space_with_a_conv_branch_moves_the_first_rung_to_its_share() -> None:
    classifier = probe_space(load_space("classification"), _italy_info())
    assert space_min_rounds(classifier, 20) == 8 == round(FAMILY_MIN_SHARE["convolutional"] * 20)
    co2 = load_dataset(resolve_dataset("co2")).info
    assert space_min_rounds(probe_space(load_space("forecasting"), co2), 20) == 2


def test_no_trial_is_pruned_before_the_first_rung_however_bad() -> None:
    pruner = study_pruner(TuneConfig(), first_rung=8)
    study = optuna.create_study(pruner=pruner)
    for _ in range(3):  # three good trials run to the end
        trial = study.ask()
        for step in range(20):
            trial.report(0.1, step)
            assert not trial.should_prune()
        study.tell(trial, 0.1)
    worst = study.ask()
    for step in range(8):
        worst.report(1.0, step)
        assert not worst.should_prune(), f"pruned at round {step + 1}"
    worst.report(1.0, 8)
    assert worst.should_prune()  # the first rung: compared with the others' round 9
