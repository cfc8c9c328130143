"""The recurrent cells a model can be built with: one registered entry per cell.

Everything that depends on the cell reads its entry here: the values a space may
give (`params.CHOICES`), the layer the builders make, the size estimate (gates
and biases), the transfer of pretrained weights and the names shown. A new cell
is one more `Cell` in `CELLS`. Keras is not imported: the entry names its layer
class, so the size estimate and the space checks stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One recurrent cell: its parameter value, Keras layer and weight counts."""

    name: str  # the value of the `cell` parameter
    layer: str  # its class in `keras.layers`
    gates: int  # weight blocks per unit: the size estimate's multiplier
    biases: int  # bias vectors per gate (Keras' GRU keeps two: reset_after)
    float32_on_jax_gpu: bool  # cuDNN through JAX takes float32 only (no mixed precision)


CELLS: dict[str, Cell] = {
    cell.name: cell
    for cell in (
        Cell("lstm", "LSTM", gates=4, biases=1, float32_on_jax_gpu=True),
        Cell("gru", "GRU", gates=3, biases=2, float32_on_jax_gpu=False),
    )
}


def weights_per_direction(cell: str, *, units: int, inputs: int) -> int:
    """Weights of one direction of a recurrent layer (kernels, recurrent kernels, biases)."""
    entry = CELLS[cell]
    return entry.gates * (units * (inputs + units) + entry.biases * units)
