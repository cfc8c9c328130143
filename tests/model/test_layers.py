"""Saved models with the registered layers load in safe mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series


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
