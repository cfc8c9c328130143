"""Build and compile a Keras model from the values a search space chose.

Model building never samples: it receives the chosen values. One recurrent
stack serves every task; the task (tuner/tasks/) puts its input and head around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from tuner.data.spec import DatasetInfo
from tuner.model.blocks import attention_pooling
from tuner.model.cells import CELLS
from tuner.model.params import TrialParams
from tuner.tasks.base import get_task


def build_model(params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
    """The task's model (`Task.build`): forecaster, classifier, character model, ..."""
    return get_task(info.task).build(TrialParams.of(params, max_seq_len=info.max_seq_len), info)


def compile_args(info: DatasetInfo) -> dict[str, Any]:
    """Loss and metrics for `model.compile` (`Task.compile_args`); one metric is the
    objective's, per epoch (see `objective_monitor`)."""
    return get_task(info.task).compile_args(info)


def objective_monitor(info: DatasetInfo) -> tuple[str, float]:
    """The per-epoch Keras log that equals the trial's objective (without the weight
    penalty the loss includes) once multiplied by the factor: what pruning reports."""
    return get_task(info.task).objective_monitor(info)


def recurrent_stack(x: Any, params: Mapping[str, Any], *, sequences: bool = False) -> Any:
    """The recurrent layers the parameters choose, over `x`: the last state (or
    attention pooling over every state) unless `sequences` (a causal model's output
    at every step, never bidirectional)."""
    params = TrialParams.of(params)
    cell = getattr(keras.layers, CELLS[params.cell].layer)
    attention = not sequences and bool(params["attention"])
    for i, units in enumerate(params.units):
        last = i == params.layers - 1
        layer = cell(
            units,
            return_sequences=not last or attention or sequences,
            kernel_regularizer=l2(params),
            dtype=_cell_dtype(params.cell),
        )
        both_ways = not sequences and params["bidirectional"]  # sequences: a causal model
        x = keras.layers.Bidirectional(layer)(x) if both_ways else layer(x)
        if params["layer_norm"] and not last:
            x = keras.layers.LayerNormalization()(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout)(x)
    return attention_pooling(x, mask=getattr(x, "_keras_mask", None)) if attention else x


def _cell_dtype(cell: str) -> str | None:
    """The dtype policy of a recurrent layer: the global one (None), except a cell that
    Keras' JAX backend runs through cuDNN (`jax.experimental.rnn`, LSTM) under a mixed
    policy, which computes in float32: cuDNN takes float32 only, and in bfloat16 or
    float16 every trial failed ("Unknown output type bfloat16", on an H200)."""
    mixed = keras.config.dtype_policy().compute_dtype != "float32"
    cudnn = CELLS[cell].float32_on_jax_gpu and keras.backend.backend() == "jax"
    return "float32" if cudnn and mixed else None


def l2(params: Mapping[str, Any]) -> keras.regularizers.Regularizer | None:
    l2 = TrialParams.of(params).l2
    return keras.regularizers.L2(l2) if l2 > 0 else None


def make_optimizer(
    params: Mapping[str, Any], *, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    """Optimizer with learning rate, schedule and gradient clipping from the params."""
    params = TrialParams.of(params)
    lr: float | keras.optimizers.schedules.LearningRateSchedule = params.learning_rate
    if params.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps_per_epoch * epochs)
    clip = float(params["clipnorm"]) or None
    name = params["optimizer"]
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=float(params["momentum"]), clipnorm=clip)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, clipnorm=clip)
    return keras.optimizers.Adam(lr, clipnorm=clip)
