"""Small pieces: windows, baselines, the hp adapter, model round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series
from tuner.data.windows import WindowCache, make_windows
from tuner.errors import InputError
from tuner.space import OptunaHP, ProbeHP, load_space, probe_space


def test_windows_hold_the_right_rows() -> None:
    series = np.arange(20, dtype=np.float32).reshape(10, 2)  # row r = [2r, 2r+1]
    w = make_windows(series, seq_len=3, horizon=2, n_targets=1, start=5, end=10)
    assert w.x.shape == (4, 3, 2) and w.y.shape == (4, 2, 1)
    assert w.x[0, :, 0].tolist() == [4, 6, 8]  # rows 2, 3, 4
    assert w.y[0, :, 0].tolist() == [10, 12]  # rows 5, 6
    assert w.y[-1, :, 0].tolist() == [16, 18]  # rows 8, 9: the last target row is end - 1


def test_window_cache_builds_once_per_length_and_splits_targets_chronologically() -> None:
    data = load_series(resolve_dataset("co2"))
    cache = WindowCache(data)
    first = cache.get(26)
    assert cache.get(26) is first
    train_end, val_end, test_end = data.borders
    horizon = data.spec.horizon
    assert len(first["train"].x) == train_end - 26 - horizon + 1
    assert len(first["val"].x) == val_end - train_end - horizon + 1
    assert len(first["test"].x) == test_end - val_end - horizon + 1
    # The first validation target is the first validation row.
    assert first["val"].y[0, 0, 0] == data.scaled[train_end, 0]


def test_scaler_is_fit_on_training_rows_only() -> None:
    data = load_series(resolve_dataset("co2"))
    train = data.scaled[: data.borders[0]]
    assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-3
    assert float(data.scaled[data.borders[1] :].mean()) > 1  # CO2 rises: test lies above train


def test_persistence_baseline_matches_a_direct_computation() -> None:
    data = load_series(resolve_dataset("co2"))
    _, val_end, test_end = data.borders
    h = data.spec.horizon
    y = data.scaled[:, 0]
    errs = [(y[s + k] - y[s - 1]) ** 2 for s in range(val_end, test_end - h + 1) for k in range(h)]
    assert data.baselines()["persistence_test"]["mse"] == pytest.approx(np.mean(errs), rel=1e-5)


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


def test_model_with_custom_layers_round_trips_in_safe_mode(tmp_path: Path) -> None:
    import keras

    from tuner.model.build import build_model

    data = load_series(resolve_dataset("co2")).info
    params = {
        "seq_len": 8,
        "layers": 2,
        "units_0": 4,
        "units_1": 4,
        "attention": True,
        "normalize": "last",
        "layer_norm": True,
        "cell": "gru",
    }
    model = build_model(params, data)
    x = np.random.default_rng(0).normal(size=(5, 8, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert model.output_shape == (None, 13, 1)


def test_progress_shows_the_running_trials_epochs_only_in_a_terminal() -> None:
    import io

    from rich.console import Console

    from tuner.report.console import TrialProgress

    screen = io.StringIO()
    with TrialProgress(5, 1, console=Console(file=screen, force_terminal=True, width=120)) as bar:
        bar.epoch(3, 1, 10, {"val_loss": 0.25})
    text = screen.getvalue()
    assert "trial 3" in text and "2/10" in text and "val_loss 0.25000" in text
    log = io.StringIO()
    with TrialProgress(5, 1, console=Console(file=log, force_terminal=False)) as bar:
        bar.epoch(3, 1, 10, {"val_loss": 0.25})
    assert log.getvalue() == ""  # logs get one line per finished trial, no epoch bars
