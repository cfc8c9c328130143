"""Models in the data's own units: what every saved model is.

Trials train on standardised data (the scaler fit on the training rows). What
is saved is the trained model composed with that scaler, from Keras' own
layers: a `Rescaling` by the training mean and scale in front, and for
forecasts its inverse behind, so the saved model reads raw values
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

from tuner.model.blocks import EXACT
from tuner.tasks.base import get_task

TRAINED = "trained"  # the trained model inside a saved one (standardised inputs)


def in_data_units(model: keras.Model, preprocessing: Mapping[str, Any]) -> keras.Model:
    """`model` (standardised inputs and outputs) as a model of the data's units."""
    task = get_task(preprocessing["task"])
    if not task.standardised or is_in_data_units(model):
        return model
    mean = np.asarray(preprocessing["mean"], np.float64)
    scale = np.asarray(preprocessing["scale"], np.float64)
    trained = keras.Model(model.input, model.output, name=TRAINED)
    raw = keras.Input(model.input_shape[1:], name="values")
    # (x - mean) / scale in two steps, so a step padded with the mean is exactly 0
    # (the padding the model masks); Rescaling keeps mean and scale as constants in
    # the graph, which ONNX exports keep (a Normalization layer's become inputs there).
    # In float32 whatever the training policy: bfloat16 keeps 8 bits of mantissa, which
    # put a forecast of 372.4 ppm on a 2-ppm grid (trained in mixed_bfloat16 on an H200).
    centre = keras.layers.Rescaling(scale=1.0, offset=(-mean).tolist(), name="centre", dtype=EXACT)
    standardise = keras.layers.Rescaling(
        scale=(1 / scale).tolist(), name="standardise", dtype=EXACT
    )
    out = trained(standardise(centre(raw)))
    if task.outputs_in_units:
        k = len(preprocessing["targets"])
        to_units = keras.layers.Rescaling(
            scale=scale[:k].tolist(),
            offset=mean[:k].tolist(),
            name="to_data_units",
            dtype=EXACT,
        )
        out = to_units(out)
    return keras.Model(raw, out, name=f"{model.name}_in_data_units")


def is_in_data_units(model: keras.Model) -> bool:
    return any(layer.name == TRAINED for layer in model.layers)


def trained_part(model: keras.Model) -> keras.Model:
    """The standardised model inside a saved one (a model saved without the
    scaler, by an earlier version, as it is)."""
    return model.get_layer(TRAINED) if is_in_data_units(model) else model


def raw_inputs(x: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """Standardised model inputs back in the data's units (padding becomes the mean)."""
    return get_task(preprocessing["task"]).raw_inputs(x, preprocessing)
