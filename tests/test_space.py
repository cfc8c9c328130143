"""The hp adapter: Optuna's suggestions, conditional scopes, the probe's checks."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series
from tuner.data.spec import DatasetInfo
from tuner.errors import InputError
from tuner.space import OptunaHP, ProbeHP, load_space, probe_space


def test_optuna_adapter_conditional_parameters() -> None:
    space = load_space("forecasting")
    data = load_series(resolve_dataset("co2")).info
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        hp = OptunaHP(trial, "forecasting")
        space.fn(hp, data)
        layers = hp.values["layers"]
        assert {f"units_{i}" for i in range(layers)} <= set(hp.values)
        assert f"units_{layers}" not in hp.values
        assert ("momentum" in hp.values) == (hp.values["optimizer"] == "sgd")
        assert hp.values["seq_len"] in data.window_choices()
        study.tell(trial, 0.0)


def test_conditional_scope_and_fixed() -> None:
    hp = ProbeHP("t")
    hp.Choice("cell", ["lstm", "gru"])
    with hp.conditional_scope("cell", ["gru"]):
        assert hp.Int("gru_only", 1, 2) is None
    assert hp.Fixed("batch_size", 64) == 64
    assert hp.values == {"cell": "lstm", "batch_size": 64}


def test_probe_rejects_log_sampling_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "log0.py"
    path.write_text(
        "def space(hp, data):\n    hp.Choice('seq_len', [8])\n"
        "    hp.Float('learning_rate', 0.0, 1.0, sampling='log')\n"
    )
    data = load_series(resolve_dataset("co2")).info
    with pytest.raises(InputError, match="log sampling needs min_value > 0"):
        probe_space(load_space(str(path)), data)


def test_declared_defaults_are_a_new_studys_first_trial(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from tuner.config import TuneConfig
    from tuner.space import default_configuration
    from tuner.study.setup import open_study, prepare_data

    config = TuneConfig(dataset="alice", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    data, space = prepare_data(config)
    defaults = default_configuration(space, data.info)
    assert defaults is not None
    assert (defaults["seq_len"], defaults["cell"], defaults["units_0"]) == (256, "gru", 256)
    assert defaults["attention"] is False and "units_1" not in defaults  # first value, inactive
    for _ in range(2):  # opened again (a worker, a resume): enqueued once
        study = open_study(config, data, space)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [defaults]
    assert default_configuration(load_space("forecasting"), _co2()) is None  # none declared


def _co2() -> DatasetInfo:
    return load_series(resolve_dataset("co2")).info


def test_a_default_outside_its_range_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad_default.py"
    path.write_text("def space(hp, data):\n    hp.Int('units_0', 4, 8, default=16)\n")
    with pytest.raises(InputError, match=r"hp.Int\('units_0'\) has default=16, outside"):
        probe_space(load_space(str(path)), _co2())
