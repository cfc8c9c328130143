"""The model pieces that keep the naive forecasts inside the space, the LSTM-FCN
branch, and the data-derived defaults (windows, batch sizes, epoch scaling)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tuner.data.catalog import resolve_dataset
from tuner.data.sequences import PAD, load_sequences
from tuner.data.spec import DatasetInfo
from tuner.model.blocks import (
    attention_pooling,
    conv_branch,
    normalization,
    padded_standardisation,
)
from tuner.model.build import build_model
from tuner.model.portable import in_data_units
from tuner.model.train import EpochRecorder, FitSettings, fit_trial

RNG = np.random.default_rng(0)


def _info(**fields: object) -> DatasetInfo:
    base: dict[str, object] = {
        "task": "forecasting",
        "n_features": 3,
        "n_targets": 2,
        "n_rows": 5000,
        "n_train": 3500,
        "max_seq_len": 1000,
        "horizon": 30,
        "seasonal_period": 12,
    }
    return DatasetInfo(**{**base, **fields})  # type: ignore[arg-type]


def _windows(steps: int, features: int = 3, n: int = 6) -> np.ndarray:
    level = RNG.normal(size=(n, 1, features)) * 5
    return (level + RNG.normal(size=(n, steps, features))).astype("float32")


def _naive(x: np.ndarray, kind: str, *, horizon: int, n_targets: int, period: int) -> np.ndarray:
    steps = x.shape[1]
    if kind == "persistence":
        rows = [steps - 1] * horizon
    else:
        rows = [steps - period + h % period for h in range(horizon)]
    return x[:, rows, :n_targets]


@pytest.mark.parametrize("normalize", ["none", "last", "revin"])
@pytest.mark.parametrize("head", ["persistence", "seasonal"])
def test_residual_head_is_the_naive_forecast_at_initialisation(normalize: str, head: str) -> None:
    info = _info()  # horizon 30 > period 12: the season is repeated
    params = {"seq_len": 24, "units_0": 4, "normalize": normalize, "naive_head": head}
    model = build_model(params, info)
    x = _windows(24)
    expected = _naive(x, head, horizon=30, n_targets=2, period=12)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_revin_round_trips_a_window_and_standardises_it() -> None:
    window = keras.Input((48, 3))
    norm = normalization("revin", window, n_targets=3)
    model = keras.Model(window, [norm.inputs, norm.restore(norm.inputs)])
    x = _windows(48)
    scaled, restored = model.predict(x, verbose=0)
    np.testing.assert_allclose(restored, x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaled.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=1), 1, rtol=1e-4)


def test_forecaster_loads_in_plain_keras_without_this_package(tmp_path: Path) -> None:
    params = {"seq_len": 24, "layers": 2, "units_0": 4, "units_1": 4, "layer_norm": True}
    params |= {"normalize": "revin", "naive_head": "seasonal", "attention": True}
    model = build_model(params, _info())
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    path = tmp_path / "m.keras"
    model.save(path)
    x = _windows(24)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.saving.load_model({str(path)!r}, safe_mode=True)\n"
        f"y = m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)\n"
        f"expected = np.load({str(tmp_path / 'y.npy')!r})\n"
        "np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)\n"
        "assert not any(name.startswith('tuner') for name in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_attention_pooling_weighs_only_the_real_steps() -> None:
    """Built-in layers only; a padded sequence pools as its trimmed self."""
    sequence = keras.Input((None, 2))
    masked = keras.layers.Masking(mask_value=PAD)(sequence)
    states = keras.layers.LSTM(4, return_sequences=True)(masked)
    pooled = keras.Model(sequence, attention_pooling(states, mask=states._keras_mask))
    real = RNG.normal(size=(1, 7, 2)).astype("float32")
    padded = np.concatenate([real, np.full((1, 5, 2), PAD, "float32")], axis=1)
    np.testing.assert_allclose(
        pooled.predict(padded, verbose=0), pooled.predict(real, verbose=0), rtol=1e-5, atol=1e-6
    )
    # With a zero query every step scores alike: the pooled vector is the mean state.
    weights = pooled.get_layer("attention_query")
    weights.set_weights([np.zeros_like(w) for w in weights.get_weights()])
    mean = keras.Model(sequence, states).predict(real, verbose=0).mean(axis=1)
    np.testing.assert_allclose(pooled.predict(padded, verbose=0), mean, rtol=1e-5, atol=1e-6)


def test_conv_branch_averages_over_the_real_steps_only() -> None:
    # One block: padded steps hold zeros, as "same" padding does, so the real steps'
    # features are those of the trimmed sequence (deeper blocks see the first
    # block's outputs at padded steps near the end of a short sequence).
    sequence = keras.Input((None, 2))
    masked = keras.layers.Masking(mask_value=PAD)(sequence)
    pooled = conv_branch(sequence, layers=1, filters=4, mask=masked._keras_mask)
    model = keras.Model(sequence, pooled)
    real = RNG.normal(size=(1, 10, 2)).astype("float32")
    padded = np.concatenate([real, np.full((1, 19, 2), PAD, "float32")], axis=1)
    np.testing.assert_allclose(
        model.predict(padded, verbose=0), model.predict(real, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_lstm_fcn_trains_on_a_variable_length_set() -> None:
    data = load_sequences(resolve_dataset("japanese_vowels"))
    assert data.info.variable_length
    params = {"units_0": 16, "conv_layers": 2, "conv_filters": 16, "batch_size": 16}
    result = fit_trial(
        params,
        data.windows(0),
        data,
        FitSettings(max_epochs=3, patience=3, seed=0),
        recorder=EpochRecorder(),
    )
    assert result.epochs_run == 3  # rounds: each several passes over 216 sequences
    assert any("conv1d" in layer.name for layer in result.model.layers)
    assert result.val_metrics["accuracy"] > 1 / 9  # better than a guess among 9 speakers


def test_dimension_shuffle_and_sequence_normalisation_build_for_fixed_length() -> None:
    data = load_sequences(resolve_dataset("italy_power_demand"))
    params = {"units_0": 8, "dim_shuffle": True, "seq_norm": True, "conv_layers": 1}
    model = build_model({**params, "conv_filters": 8}, data.info)
    recurrent = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    assert recurrent.input.shape[1:] == (1, 24)  # one step holding the whole day
    assert model.predict(data.x[:3], verbose=0).shape == (3, 1)


def test_pooled_classifier_reads_fewer_steps_and_ignores_how_much_padding() -> None:
    def info(steps: int) -> DatasetInfo:
        return _info(task="classification", n_features=2, n_targets=1, n_classes=3,
                     n_train=40, max_seq_len=steps, variable_length=True, horizon=1)  # fmt: skip

    assert info(1344).pool_choices() == [1, 2, 4, 8]  # PLAID's longest: 168 steps at most
    assert info(300).pool_choices() == [1]  # short: no pooling offered
    params = {"units_0": 8, "conv_layers": 2, "conv_filters": 8, "pool": 4}
    short, long = build_model(params, info(600)), build_model(params, info(1200))
    long.set_weights(short.get_weights())  # no weight depends on the length
    pooling = next(x for x in short.layers if isinstance(x, keras.layers.AveragePooling1D))
    assert pooling.output.shape[1] == 150  # both branches read 600 steps pooled by 4
    real = RNG.normal(size=(1, 301, 2)).astype("float32")  # the last pooled step is part pad
    pad = [np.full((1, n, 2), PAD, "float32") for n in (600 - 301, 1200 - 301)]
    np.testing.assert_allclose(
        short.predict(np.concatenate([real, pad[0]], axis=1), verbose=0),
        long.predict(np.concatenate([real, pad[1]], axis=1), verbose=0),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_sequence_normalisation_of_padded_data_uses_the_real_steps_and_keeps_pads() -> None:
    # Per-sequence z-normalisation of variable-length data: the mean and spread of the
    # real steps only (not of the padding), and padded steps stay exactly PAD so the
    # Masking layer after it still skips them (PLAID: 78 % of its steps are padding).
    lengths, steps = [50, 10, 31, 3], 50
    x = np.full((4, steps, 2), PAD, "float32")
    for i, n in enumerate(lengths):
        x[i, :n] = RNG.normal(size=(n, 2)) * 10.0 ** (i - 2) + i  # scales 0.01 to 10
    x[2, :31, 1] = 0.0  # one feature all zero: still real steps (the other is not)
    sequence = keras.Input((steps, 2))
    got = keras.Model(sequence, padded_standardisation(sequence)).predict(x, verbose=0)
    for i, n in enumerate(lengths):
        real = x[i, :n]
        spread = real.std(axis=0)
        want = np.where(spread > 0, (real - real.mean(axis=0)) / np.where(spread > 0, spread, 1), 0)
        np.testing.assert_allclose(got[i, :n], want, atol=1e-5)
        assert (got[i, n:] == PAD).all()
    params = {"units_0": 8, "conv_layers": 1, "conv_filters": 8, "seq_norm": True}
    info = _info(task="classification", n_features=2, n_targets=1, n_classes=3, n_train=40,
                 max_seq_len=steps, variable_length=True, horizon=1)  # fmt: skip
    model = build_model(params, info)
    longer = build_model(params, dataclasses.replace(info, max_seq_len=2 * steps))
    longer.set_weights(model.get_weights())
    padded = np.concatenate([x, np.full_like(x, PAD)], axis=1)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), longer.predict(padded, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_windows_come_from_the_data() -> None:
    hourly = _info(n_features=1, n_targets=1, n_train=8640, horizon=24, seasonal_period=24)
    assert hourly.window_choices() == [24, 48, 96, 168]  # up to a week of hours
    assert _info(lookback=52, seasonal_period=52).window_choices() == [52, 104, 156]
    assert _info(seasonal_period=None, horizon=1).window_choices() == [16, 32, 64]
    assert _info(max_seq_len=100, seasonal_period=24).window_choices() == [24, 48, 96]
    text = _info(task="char_lm", n_train=115_000, max_seq_len=14_000, seasonal_period=None)
    assert text.window_choices() == [64, 128, 256]
    assert "64, 128, 256" in text.window_rule


def test_batch_sizes_leave_a_pass_enough_steps() -> None:
    # Classification keeps a batch of 16 wherever it fits (rounds of several passes
    # give a small set its steps); windows of series need 8 steps a pass.
    tiny = _info(task="classification", n_train=53)
    assert tiny.batch_size_choices((16, 32, 64)) == [16, 32]
    assert _info(task="classification", n_train=10).batch_size_choices((16, 32)) == [4, 8]
    assert _info(n_train=1000, seasonal_period=None).batch_size_choices((64, 128, 256)) == [64]
    assert _info(n_train=8640).batch_size_choices((64, 128, 256)) == [64, 128, 256]


def test_a_model_trained_in_mixed_precision_answers_in_float32_data_units() -> None:
    # At initialisation the persistence head forecasts the window's last value; in
    # the data's units (about 372 ppm) bfloat16 would round it to a 2-ppm grid.
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        info = _info(n_features=1, n_targets=1, horizon=3)
        model = build_model({"seq_len": 8, "units_0": 4, "naive_head": "persistence"}, info)
        units = in_data_units(
            model, {"task": "forecasting", "mean": [370.0], "scale": [10.0], "targets": ["co2"]}
        )
    finally:
        keras.config.set_dtype_policy("float32")
    x = (371.0 + np.linspace(0, 1.37, 8, dtype="float32"))[None, :, None]
    forecast = units.predict(x, verbose=0)
    np.testing.assert_allclose(forecast[0, :, 0], [x[0, -1, 0]] * 3, rtol=0, atol=1e-4)
