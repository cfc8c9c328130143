"""The size of a search space's largest model, estimated from the space's candidate
values without building it (the parent process never loads Keras): how many
weights it has and how much GPU memory training it takes. `tuner tune` picks the
default number of trials sharing a GPU from it.

The estimate counts the weights of the recurrent stack, the convolutional
branch and the heads (within 10 % of Keras' own count: tests/model/test_size.py)
and training memory as weights, gradients and two Adam moments plus the
activations a backward pass keeps (about ten floats per unit and step for the
gates and states), for the largest batch, window and width the space offers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuner.data.spec import DatasetInfo
from tuner.model.cells import CELLS, weights_per_direction
from tuner.model.params import CONV_KERNELS, CONV_WIDTHS, DEFAULTS, HEAD_WIDTH, pattern

_SAVED_PER_UNIT = 10  # floats a backward pass keeps per unit and step (gates, states, output)


@dataclass(frozen=True)
class ModelSize:
    """The largest model of a space: its weights and the MB its training needs."""

    weights: int
    training_mb: float
    summary: str  # e.g. "3 x LSTM(64) over 336 steps, batch 256"


def largest_values(candidates: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The value of each sizing parameter that makes the model largest (the high end
    of a range, the largest choice, True for a switch, the cell with the most gates)."""
    values: dict[str, Any] = {}
    for name, options in candidates.items():
        numbers = [v for v in options if isinstance(v, int | float)]
        if name == "cell":
            values[name] = max(options, key=lambda c: CELLS[c].gates if c in CELLS else 0)
        elif numbers:
            values[name] = max(numbers)
        elif options:
            values[name] = options[0]
    return values


def largest_model(candidates: Mapping[str, Sequence[Any]], info: DatasetInfo) -> ModelSize:
    """Weights and training memory of the space's largest configuration."""
    values = largest_values(candidates)

    def get(name: str) -> Any:
        return values.get(name, DEFAULTS[pattern(name)])

    cell = str(get("cell"))
    layers = int(get("layers"))
    widths = [
        max(int(v) for k, v in values.items() if pattern(k) == "units_{i}")
        if any(pattern(k) == "units_{i}" for k in values)
        else int(DEFAULTS["units_{i}"])
    ] * layers
    directions = 2 if get("bidirectional") else 1
    batch = int(get("batch_size"))
    steps = int(values.get("seq_len", info.max_seq_len))
    if info.task == "char_lm":
        features = int(get("embedding_dim"))
    elif info.task == "classification" and candidates.get("dim_shuffle") == [True]:
        steps, features = info.n_features, info.max_seq_len
    else:
        features = info.n_features

    weights, inputs, saved = 0, features, 0
    for i, units in enumerate(widths):
        weights += directions * weights_per_direction(cell, units=units, inputs=inputs)
        inputs = directions * units
        saved += batch * steps * directions * units * _SAVED_PER_UNIT
        if get("layer_norm") and i < layers - 1:
            weights += 2 * inputs
    if get("attention") and info.task != "char_lm":  # attention pooling's query
        weights += inputs * inputs
    weights, saved = _heads(weights, saved, inputs, values, info, batch=batch, steps=steps)
    megabytes = 4 * (4 * weights + 2 * saved) / 2**20
    summary = f"{layers} x {CELLS[cell].layer}({widths[0]}) over {steps} steps, batch {batch}"
    return ModelSize(weights=weights, training_mb=megabytes, summary=summary)


def _heads(
    weights: int,
    saved: int,
    width: int,
    values: Mapping[str, Any],
    info: DatasetInfo,
    *,
    batch: int,
    steps: int,
) -> tuple[int, int]:
    """Add the embedding, the convolutional branch and the output layers."""
    if info.task == "char_lm":
        weights += info.vocab_size * int(values.get("embedding_dim", DEFAULTS["embedding_dim"]))
        weights += (width + 1) * info.vocab_size
        saved += batch * steps * info.vocab_size * 2  # logits and their softmax
        if values.get("attention"):  # causal self-attention: q, k, v, output, norm, update
            weights += 5 * width * width + 7 * width
            saved += batch * max(1, width // HEAD_WIDTH) * steps * steps  # the scores of every head
        return weights, saved
    if info.task == "forecasting":
        return weights + (width + 1) * info.horizon * max(1, info.n_targets), saved
    conv_layers = int(values.get("conv_layers", 0))
    filters = int(values.get("conv_filters", DEFAULTS["conv_filters"]))
    inputs = info.n_features
    for kernel, times in list(zip(CONV_KERNELS, CONV_WIDTHS, strict=True))[:conv_layers]:
        out = filters * times
        weights += kernel * inputs * out + out + 4 * out  # convolution, batch norm
        saved += 3 * batch * info.max_seq_len * out  # convolution, norm, activation
        inputs = out
    if conv_layers:
        width += inputs
    outputs = 1 if info.n_classes == 2 else info.n_classes
    return weights + (width + 1) * outputs, saved
