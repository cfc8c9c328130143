"""The size estimate of a space's largest model, which sets how many trials share a
GPU by default, against the weights of the real Keras model."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.data.catalog import builtin_datasets, load_dataset, resolve_dataset
from tuner.model.build import build_model
from tuner.model.cells import CELLS, weights_per_direction
from tuner.model.size import largest_model, largest_values
from tuner.space import load_space, probe_space
from tuner.tasks.base import get_task


def _largest(candidates: dict[str, list[Any]]) -> dict[str, Any]:
    """The largest configuration as a trial would hold it: every layer at the widest."""
    values = largest_values(candidates)
    for i in range(int(values.get("layers", 1))):
        values[f"units_{i}"] = values["units_0"]
    return values


@pytest.mark.parametrize("name", sorted(builtin_datasets()))
def test_the_estimate_counts_the_weights_of_each_default_spaces_largest_model(name: str) -> None:
    info = load_dataset(resolve_dataset(name)).info
    candidates = probe_space(load_space(str(get_task(info.task).default_space)), info)
    size = largest_model(candidates, info)
    model = build_model(_largest(candidates), info)
    assert size.weights == pytest.approx(model.count_params(), rel=0.10), size.summary
    assert size.training_mb > 4 * 4 * model.count_params() / 2**20  # weights, grads, moments


def test_a_wider_longer_batch_needs_more_memory() -> None:
    info = load_dataset(resolve_dataset("co2")).info
    small = largest_model({"seq_len": [52], "units_0": [16], "batch_size": [32]}, info)
    wide = largest_model({"seq_len": [52], "units_0": [256], "batch_size": [32]}, info)
    long = largest_model({"seq_len": [520], "units_0": [16], "batch_size": [32]}, info)
    assert small.training_mb < wide.training_mb and small.training_mb < long.training_mb
    assert wide.weights > 100 * small.weights / 2
    assert small.summary == "1 x LSTM(16) over 52 steps, batch 32"


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_each_registered_cell_builds_and_is_counted_from_its_entry(cell: str) -> None:
    """A cell is one entry in `tuner.model.cells.CELLS`: the builder makes its layer
    and the estimate counts its gates and biases, for Keras' own count exactly."""
    info = load_dataset(resolve_dataset("co2")).info
    candidates = {"cell": [cell], "seq_len": [52], "layers": [2], "units_0": [24]}
    model = build_model(_largest(candidates), info)
    recurrent = [layer for layer in model.layers if type(layer).__name__ == CELLS[cell].layer]
    assert len(recurrent) == 2
    stack = sum(layer.count_params() for layer in recurrent)
    inputs = [info.n_features, 24]
    expected = sum(weights_per_direction(cell, units=24, inputs=i) for i in inputs)
    assert stack == expected
    assert CELLS[cell].layer in largest_model(candidates, info).summary
