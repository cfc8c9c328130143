"""Build and compile a Keras model from the values a search space chose.

Model building never samples: it receives the chosen values. One recurrent
stack serves the three tasks; the input and the head differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras

from tuner.data.sequences import PAD
from tuner.data.spec import DatasetInfo
from tuner.data.text import UNSCORED
from tuner.model.blocks import EXACT as _HEAD  # output layers stay float32 when mixed
from tuner.model.blocks import (
    attention_pooling,
    causal_self_attention,
    conv_branch,
    naive_forecast,
    normalization,
    residual_head,
)
from tuner.model.cells import CELLS
from tuner.model.params import Params


def build_model(params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
    """The task's model: forecaster, classifier or character language model."""
    params = params if isinstance(params, Params) else Params(params)
    if info.task == "classification":
        return _classifier(params, info)
    if info.task == "char_lm":
        return _char_model(params, info)
    return _forecaster(params, info)


def compile_args(info: DatasetInfo) -> dict[str, Any]:
    """Loss and metrics for `model.compile`; one metric (a character model's loss) is
    the objective's, per epoch (see `objective_monitor`)."""
    if info.task == "classification":
        if info.n_classes == 2:
            loss, log_loss = "binary_crossentropy", keras.metrics.BinaryCrossentropy
        else:
            loss, log_loss = (
                "sparse_categorical_crossentropy",
                keras.metrics.SparseCategoricalCrossentropy,
            )
        return {"loss": loss, "metrics": ["accuracy", log_loss(name="log_loss")]}
    if info.task == "char_lm":
        # Held-out windows mark the targets they read as context only (UNSCORED). The
        # loss skips them exactly; Keras' cross-entropy metric would average them in as
        # zeros under JAX (a JAX array carries no Keras mask), so there is no metric:
        # the validation loss is the objective (see `objective_monitor`).
        return {
            "loss": keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=UNSCORED
            )
        }
    return {"loss": "mse", "metrics": [keras.metrics.MeanSquaredError(name="mse"), "mae"]}


def objective_monitor(info: DatasetInfo) -> tuple[str, float]:
    """The per-epoch Keras log that equals the trial's objective (without the weight
    penalty the loss includes) once multiplied by the factor: what pruning reports."""
    if info.task == "char_lm":  # no weight penalty unless a space tunes `l2`; nats to bits
        return "val_loss", 1 / math.log(2)
    return f"val_{info.metric}", 1.0


def _forecaster(params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
    """A recurrent forecaster emitting the whole horizon at once (direct multi-output),
    optionally as a correction of the naive forecast (residual head)."""
    window = keras.Input((params["seq_len"], info.n_features), name="window")
    norm = normalization(params["normalize"], window, n_targets=info.n_targets, dtype=_HEAD)
    x = _recurrent_stack(norm.inputs, params)
    naive = params["naive_head"]
    if naive == "none":
        x = keras.layers.Dense(
            info.horizon * info.n_targets, kernel_regularizer=_l2(params), dtype=_HEAD
        )(x)
        forecast = keras.layers.Reshape((info.horizon, info.n_targets), dtype=_HEAD)(x)
    else:
        start = naive_forecast(
            naive,
            norm.inputs,
            horizon=info.horizon,
            n_targets=info.n_targets,
            period=info.seasonal_period,
        )
        forecast = residual_head(
            x, start, horizon=info.horizon, n_targets=info.n_targets, dtype=_HEAD
        )
    return keras.Model(window, norm.restore(forecast), name="forecaster")


def _classifier(params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
    """Sequences (padded steps masked) to class probabilities: sigmoid for two classes.

    Options beside the recurrent stack: per-sequence z-normalisation, a
    convolutional branch concatenated with it (LSTM-FCN), and the dimension
    shuffle (the recurrent stack reads the transposed sequence: one step per
    feature, the whole series at each step); the last two only for fixed-length
    data, where there is no padding to mask.
    """
    sequence = keras.Input((info.max_seq_len, info.n_features), name="sequence")
    x = sequence
    if params["seq_norm"]:
        x = normalization("revin", x, n_targets=info.n_features).inputs
    masked = keras.layers.Masking(mask_value=PAD)(x) if info.variable_length else x
    recurrent_in = keras.layers.Permute((2, 1))(x) if params["dim_shuffle"] else masked
    branches = [_recurrent_stack(recurrent_in, params)]
    conv_layers = int(params["conv_layers"])
    if conv_layers:
        mask = getattr(masked, "_keras_mask", None) if info.variable_length else None
        branches.append(
            conv_branch(x, layers=conv_layers, filters=int(params["conv_filters"]), mask=mask)
        )
    x = keras.layers.Concatenate()(branches) if len(branches) > 1 else branches[0]
    reg = _l2(params)
    if info.n_classes == 2:
        out = keras.layers.Dense(
            1, activation="sigmoid", kernel_regularizer=reg, name="proba", dtype=_HEAD
        )(x)
    else:
        out = keras.layers.Dense(
            info.n_classes, activation="softmax", kernel_regularizer=reg, name="proba", dtype=_HEAD
        )(x)
    return keras.Model(sequence, out, name="classifier")


def _char_model(params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
    """Characters to next-character logits at every step (any input length);
    optionally with causal self-attention over the recurrent states."""
    chars = keras.Input((None,), dtype="int32", name="chars")
    x = keras.layers.Embedding(info.vocab_size, int(params["embedding_dim"]))(chars)
    if params["input_dropout"]:  # on the embedded characters: the small-text regulariser
        x = keras.layers.Dropout(float(params["input_dropout"]))(x)
    x = _recurrent_stack(x, params, sequences=True)
    if params["attention"]:
        x = causal_self_attention(x)
    logits = keras.layers.Dense(
        info.vocab_size, kernel_regularizer=_l2(params), name="logits", dtype=_HEAD
    )(x)
    return keras.Model(chars, logits, name="char_model")


def _recurrent_stack(x: Any, params: Mapping[str, Any], *, sequences: bool = False) -> Any:
    cell = getattr(keras.layers, CELLS[params["cell"]].layer)
    layers = int(params["layers"])
    attention = not sequences and bool(params["attention"])
    for i in range(layers):
        last = i == layers - 1
        layer = cell(
            int(params[f"units_{i}"]),
            return_sequences=not last or attention or sequences,
            kernel_regularizer=_l2(params),
            dtype=_cell_dtype(params["cell"]),
        )
        both_ways = not sequences and params["bidirectional"]  # sequences: a causal model
        x = keras.layers.Bidirectional(layer)(x) if both_ways else layer(x)
        if params["layer_norm"] and not last:
            x = keras.layers.LayerNormalization()(x)
        if params["dropout"]:
            x = keras.layers.Dropout(float(params["dropout"]))(x)
    return attention_pooling(x, mask=getattr(x, "_keras_mask", None)) if attention else x


def _cell_dtype(cell: str) -> str | None:
    """The dtype policy of a recurrent layer: the global one (None), except a cell that
    Keras' JAX backend runs through cuDNN (`jax.experimental.rnn`, LSTM) under a mixed
    policy, which computes in float32: cuDNN takes float32 only, and in bfloat16 or
    float16 every trial failed ("Unknown output type bfloat16", on an H200)."""
    mixed = keras.config.dtype_policy().compute_dtype != "float32"
    cudnn = CELLS[cell].float32_on_jax_gpu and keras.backend.backend() == "jax"
    return "float32" if cudnn and mixed else None


def _l2(params: Mapping[str, Any]) -> keras.regularizers.Regularizer | None:
    l2 = float(params["l2"])
    return keras.regularizers.L2(l2) if l2 > 0 else None


def make_optimizer(
    params: Mapping[str, Any], *, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    """Optimizer with learning rate, schedule and gradient clipping from the params."""
    params = params if isinstance(params, Params) else Params(params)
    lr: float | keras.optimizers.schedules.LearningRateSchedule = float(params["learning_rate"])
    if params["lr_schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps_per_epoch * epochs)
    clip = float(params["clipnorm"]) or None
    name = params["optimizer"]
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=float(params["momentum"]), clipnorm=clip)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, clipnorm=clip)
    return keras.optimizers.Adam(lr, clipnorm=clip)
