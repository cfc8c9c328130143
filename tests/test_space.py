"""The hp adapter: Optuna's suggestions, conditional scopes, the probe's checks."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series
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
