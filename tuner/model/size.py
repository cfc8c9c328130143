"""The size of a search space's largest model, estimated from the space's candidate
values without building it (the parent process never loads Keras): how many
weights it has and how much GPU memory training it takes. `tuner tune` picks the
default number of trials sharing a GPU from it.

The estimate counts the weights of the recurrent stack and of what the task puts
around it (`Task.size_head`: embedding, convolutional branch, output layers),
within 10 % of Keras' own count (tests/model/test_size.py), and training memory
as weights, gradients and two Adam moments plus the activations a backward pass
keeps (about ten floats per unit and step for the gates and states), for the
largest batch, window and width the space offers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuner.data.spec import DatasetInfo
from tuner.model.cells import CELLS, weights_per_direction
from tuner.model.params import DEFAULTS, pattern
from tuner.tasks.base import get_task

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
    task = get_task(info.task)
    steps, features = task.size_inputs(info, candidates, values)

    weights, inputs, saved = 0, features, 0
    for i, units in enumerate(widths):
        weights += directions * weights_per_direction(cell, units=units, inputs=inputs)
        inputs = directions * units
        saved += batch * steps * directions * units * _SAVED_PER_UNIT
        if get("layer_norm") and i < layers - 1:
            weights += 2 * inputs
    if get("attention") and not task.per_step:  # attention pooling's query
        weights += inputs * inputs
    head, head_saved = task.size_head(info, values, inputs, batch=batch, steps=steps)
    weights, saved = weights + head, saved + head_saved
    megabytes = 4 * (4 * weights + 2 * saved) / 2**20
    summary = f"{layers} x {CELLS[cell].layer}({widths[0]}) over {steps} steps, batch {batch}"
    return ModelSize(weights=weights, training_mb=megabytes, summary=summary)
