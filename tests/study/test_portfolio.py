"""The portfolio of known-good configurations and the family-aware pruner: real
spaces replayed, a real Optuna study, a real (tiny) study trained end to end."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, IntDistribution

from tests.conftest import SPACES, Stores
from tuner.cli.main import main
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.model.params import FAMILY_MIN_SHARE, min_rounds
from tuner.space import load_space
from tuner.study.portfolio import PORTFOLIO, portfolio
from tuner.study.pruning import FairPruner


def _italy_info():  # type: ignore[no-untyped-def]
    return load_dataset(resolve_dataset("italy_power_demand")).info


def test_the_default_classification_space_expresses_both_lstm_fcn_entries() -> None:
    first = portfolio(load_space("classification"), _italy_info())
    assert [name for _, name in first.configurations] == ["lstm-fcn-2017", "lstm-fcn-2017-128"]
    params, _ = first.configurations[0]
    assert params["conv_layers"] == 3 and params["conv_filters"] == 128
    assert params["dim_shuffle"] and params["batch_size"] == 16 and params["units_0"] == 16
    assert first.lines == []


def test_variable_length_data_drops_what_the_space_does_not_ask_for() -> None:
    info = load_dataset(resolve_dataset("japanese_vowels")).info
    first = portfolio(load_space("classification"), info)
    params, name = first.configurations[0]
    assert name == "lstm-fcn-2017" and "dim_shuffle" not in params and "seq_norm" not in params


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
    assert len(first.lines) == 2
    assert first.lines[0].startswith("portfolio: skipped lstm-fcn-2017, space")
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
    assert trial.user_attrs[PORTFOLIO] == "lstm-fcn-2017"
    assert trial.params["conv_layers"] == 3 and trial.state.name == "COMPLETE"
    client = MlflowClient(stores.tracking)
    experiment = client.get_experiment_by_name("folio")
    runs = client.search_runs([experiment.experiment_id], "tags.portfolio = 'lstm-fcn-2017'")
    assert len(runs) == 1


def _study_always_pruning() -> optuna.Study:
    # The wrapped pruner prunes any trial that reports a value above -1: everything.
    inner = optuna.pruners.ThresholdPruner(upper=-1.0)
    return optuna.create_study(pruner=FairPruner(inner, rounds=20))


_FAMILY = {"conv_layers": IntDistribution(0, 3), "cell": CategoricalDistribution(["lstm"])}


@pytest.mark.parametrize("conv_layers", [0, 3])
def test_no_trial_is_pruned_before_its_family_has_had_its_share(conv_layers: int) -> None:
    study = _study_always_pruning()
    study.enqueue_trial({"conv_layers": conv_layers, "cell": "lstm"})
    trial = study.ask(_FAMILY)
    minimum = min_rounds(trial.params, 20)
    assert minimum == (8 if conv_layers else 2)
    assert minimum == round(FAMILY_MIN_SHARE["convolutional" if conv_layers else "recurrent"] * 20)
    for step in range(minimum - 1):
        trial.report(1.0, step)
        assert not trial.should_prune(), f"pruned at round {step + 1} of {minimum}"
    trial.report(1.0, minimum - 1)
    assert trial.should_prune()
