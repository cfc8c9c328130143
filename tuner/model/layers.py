"""Layers of models saved by earlier versions, registered so those models still
load in safe mode; new models are built from Keras' own layers only
(`tuner.model.blocks`). Also the one way models are loaded here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tuner")
class SubtractLast(keras.layers.Layer):
    """Express a window relative to its last step (forecasting input normalisation)."""

    def call(self, x: Any) -> Any:
        return x - x[:, -1:, :]


@keras.saving.register_keras_serializable(package="tuner")
class AddLast(keras.layers.Layer):
    """Add the last input step of the target columns back onto the forecast."""

    def __init__(self, n_targets: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_targets = n_targets

    def call(self, forecast: Any, window: Any) -> Any:
        return forecast + window[:, -1:, : self.n_targets]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_targets": self.n_targets}


@keras.saving.register_keras_serializable(package="tuner")
class AttentionPooling(keras.layers.Layer):
    """Attention-weighted sum of recurrent outputs over time (the "LSTMa" head);
    masked (padding) steps get no weight."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.score = keras.layers.Dense(1, use_bias=False)
        self.score.build(input_shape)

    def call(self, sequence: Any, mask: Any = None) -> Any:
        scores = self.score(sequence)
        if mask is not None:
            scores = ops.where(ops.expand_dims(mask, -1), scores, -1e9)
        weights = ops.softmax(scores, axis=1)
        return ops.sum(weights * sequence, axis=1)


def load_model(path: str | Path) -> keras.Model:
    """A saved `.keras` model, loaded in safe mode (no code from the file runs), with
    this module's layers registered for models saved before they were replaced."""
    return keras.saving.load_model(path, safe_mode=True)
