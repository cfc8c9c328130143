"""Models in the data's own units: what every saved model is.

Trials train on standardised data (the scaler fit on the training rows). What
is saved is the trained model composed with that scaler, from Keras' own
layers: a `Normalization` with the training mean and variance in front, and for
forecasts its `invert=True` twin behind, so the saved model reads raw values
and answers in the data's units, and loads in plain Keras without this package.
Classification sequences shorter than the model's steps are padded with the
training mean of each feature (it standardises to the padding value, 0, which
the model masks). Character models read token ids and are saved as trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

TRAINED = "trained"  # the trained model inside a saved one (standardised inputs)


def in_data_units(model: keras.Model, preprocessing: Mapping[str, Any]) -> keras.Model:
    """`model` (standardised inputs and outputs) as a model of the data's units."""
    task = preprocessing["task"]
    if task == "char_lm" or is_in_data_units(model):
        return model
    mean, variance = _moments(preprocessing)
    trained = keras.Model(model.input, model.output, name=TRAINED)
    raw = keras.Input(model.input_shape[1:], name="values")
    scaled = keras.layers.Normalization(mean=mean, variance=variance, name="standardise")(raw)
    out = trained(scaled)
    if task == "forecasting":
        k = len(preprocessing["targets"])
        out = keras.layers.Normalization(
            mean=mean[:k], variance=variance[:k], invert=True, name="to_data_units"
        )(out)
    return keras.Model(raw, out, name=f"{model.name}_in_data_units")


def is_in_data_units(model: keras.Model) -> bool:
    return any(layer.name == TRAINED for layer in model.layers)


def trained_part(model: keras.Model) -> keras.Model:
    """The standardised model inside a saved one (a model saved without the
    scaler, by an earlier version, as it is)."""
    return model.get_layer(TRAINED) if is_in_data_units(model) else model


def raw_inputs(x: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """Standardised model inputs back in the data's units (padding becomes the mean)."""
    if preprocessing["task"] == "char_lm":
        return x
    mean = np.asarray(preprocessing["mean"], np.float32)
    scale = np.asarray(preprocessing["scale"], np.float32)
    return (np.asarray(x, np.float32) * scale + mean).astype(np.float32)


def _moments(preprocessing: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(preprocessing["mean"], np.float32)
    scale = np.asarray(preprocessing["scale"], np.float32)
    return mean, scale.astype(np.float64) ** 2
