"""Starting a trial from a pretrained model (`--init-from`): the layers of the new
model whose name and weight shapes match a layer of the pretrained one take its
weights; the rest start fresh. Only when a recurrent layer matches does a trial
count as fine-tuned (otherwise it trains from scratch, and says so). A space may
tune `freeze_recurrent_epochs`: the recurrent layers stay frozen for that many
epochs, then train with the rest.

Layer names are Keras' own (`lstm`, `lstm_1`, `dense`): every trial builds its
model in a fresh Keras session, so the same architecture gets the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tuner.model.cells import CELLS
from tuner.model.portable import trained_part

INIT_FROM = "init_from"  # trial attribute and MLflow tag: where the trial started from
_RECURRENT = (
    *(getattr(keras.layers, cell.layer) for cell in CELLS.values()),
    keras.layers.Bidirectional,
)


@dataclass(frozen=True)
class Pretrained:
    """The weights of a pretrained model's layers, by layer name."""

    source: str
    weights: dict[str, list[np.ndarray]]

    @classmethod
    def of(cls, model: keras.Model, *, source: str) -> Pretrained:
        """From a saved model (in the data's units: its trained part is used)."""
        inner = trained_part(model)
        weights = {
            layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in inner.layers
            if layer.weights
        }
        return cls(source=source, weights=weights)


@dataclass(frozen=True)
class Transfer:
    """What a trial took from the pretrained model."""

    layers: tuple[str, ...]  # layers that took pretrained weights
    total: int  # layers with weights in the new model

    @property
    def fine_tuned(self) -> bool:
        return bool(self.layers)

    def describe(self, source: str) -> str:
        if not self.layers:
            return f"from scratch: no recurrent layer of {source} matches this architecture"
        return f"fine-tuned from {source}: {len(self.layers)} of {self.total} layers"


def transfer(model: keras.Model, pretrained: Pretrained) -> Transfer:
    """Copy the matching layers' weights into `model`; nothing when no recurrent
    layer matches (the trial trains from scratch)."""
    weighted = [layer for layer in model.layers if layer.weights]
    matches = [layer for layer in weighted if _matches(layer, pretrained)]
    if not any(isinstance(layer, _RECURRENT) for layer in matches):
        return Transfer(layers=(), total=len(weighted))
    for layer in matches:
        layer.set_weights(pretrained.weights[layer.name])
    return Transfer(layers=tuple(layer.name for layer in matches), total=len(weighted))


def set_recurrent_trainable(model: keras.Model, trainable: bool) -> None:
    for layer in model.layers:
        if isinstance(layer, _RECURRENT):
            layer.trainable = trainable


def _matches(layer: Any, pretrained: Pretrained) -> bool:
    theirs = pretrained.weights.get(layer.name)
    if theirs is None:
        return False
    ours = layer.get_weights()
    return len(ours) == len(theirs) and all(
        a.shape == b.shape for a, b in zip(ours, theirs, strict=True)
    )
