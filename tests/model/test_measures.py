"""What a trained model costs where it is served, measured on a real Keras model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from tuner.model.measures import LATENCY_CALLS, measure
from tuner.objectives import MEASURES


def test_latency_parameters_and_file_size_of_a_real_model(tmp_path: Path) -> None:
    inputs = keras.Input((12, 3))
    outputs = keras.layers.Dense(2)(keras.layers.LSTM(8)(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(5, 12, 3)).astype("float32")

    measured = measure(model, x, MEASURES)

    assert set(measured) == set(MEASURES)
    assert measured["params"] == model.count_params() == 4 * (8 * (3 + 8) + 8) + 8 * 2 + 2
    model.save(tmp_path / "m.keras")
    assert abs(measured["size_kb"] - (tmp_path / "m.keras").stat().st_size / 1024) < 0.5
    # The median of LATENCY_CALLS one-window predictions: above zero, below a second;
    # a batch of 32 windows (5 given, repeated) takes at least a window's time.
    assert LATENCY_CALLS >= 10 and 0 < measured["latency_ms"] < 1000
    assert measured["batch_latency_ms"] > 0.5 * measured["latency_ms"]
    assert measure(model, x, ("params",)) == {"params": measured["params"]}
