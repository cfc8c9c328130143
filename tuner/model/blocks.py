"""Model pieces made of built-in Keras layers only, so a saved model loads in
plain Keras (safe mode) without this package.

Window normalisations come in pairs: the input half maps a window to the scale
the recurrent stack sees, the output half maps the forecast back. Both are
affine per window and per feature, so a naive forecast taken from the
normalised window and mapped back equals the naive forecast of the raw window:
that is what makes the residual head start exactly at persistence or at the
seasonal naive forecast.

Example::

    window = keras.Input((168, 1))
    norm = normalization("revin", window, n_targets=1)
    x = keras.layers.LSTM(32)(norm.inputs)
    ...
    forecast = norm.restore(forecast)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tuner.data.sequences import PAD
from tuner.model.params import CONV_KERNELS, CONV_WIDTHS, HEAD_WIDTH

# What stays float32 under a mixed-precision policy: the window's own arithmetic
# (normalisations, naive forecasts), the output layers and a saved model's scaling. In
# bfloat16 a naive forecast would drift from the window's last value by up to 0.4 %,
# so the residual head would not start at it.
EXACT = "float32"


@dataclass(frozen=True)
class Normalization:
    """A normalised window and the function that maps a forecast back."""

    inputs: Any
    restore: Callable[[Any], Any]


def normalization(kind: str, window: Any, *, n_targets: int, dtype: str = EXACT) -> Normalization:
    """`none`; `last` (subtract each feature's last value, add it back); `revin`
    (reversible instance normalisation, Kim et al. 2022: subtract each window's
    mean and divide by its standard deviation per feature, restore both on the
    output; no learned affine)."""
    if kind == "last":
        last = _last_step(window)
        centred = keras.layers.Subtract(dtype=EXACT)([window, last])
        return Normalization(
            centred, lambda f: keras.layers.Add(dtype=dtype)([f, targets(last, n_targets)])
        )
    if kind == "revin":
        return _revin(window, n_targets=n_targets, dtype=dtype)
    return Normalization(window, lambda f: f)


def _revin(window: Any, *, n_targets: int, dtype: str) -> Normalization:
    steps = int(window.shape[1])
    mean = keras.layers.GlobalAveragePooling1D(keepdims=True, dtype=EXACT)(window)
    centred = keras.layers.Subtract(dtype=EXACT)([window, mean])
    # UnitNormalization over time divides by the root of the sum of squares:
    # sqrt(steps) * std. Its product with the centred window, averaged over time,
    # is that norm / steps; both rescalings turn it into the standard deviation.
    # A constant window has norm 0: it maps to zeros and its forecast to the mean.
    unit = keras.layers.UnitNormalization(axis=1, dtype=EXACT)(centred)
    scaled = keras.layers.Rescaling(math.sqrt(steps), dtype=EXACT)(unit)
    norm = keras.layers.GlobalAveragePooling1D(keepdims=True, dtype=EXACT)(
        keras.layers.Multiply(dtype=EXACT)([centred, unit])
    )
    std = keras.layers.Rescaling(math.sqrt(steps), dtype=EXACT)(norm)

    def restore(forecast: Any) -> Any:
        spread = keras.layers.Multiply(dtype=dtype)([forecast, targets(std, n_targets)])
        return keras.layers.Add(dtype=dtype)([spread, targets(mean, n_targets)])

    return Normalization(scaled, restore)


def padded_standardisation(sequence: Any) -> Any:
    """Each sequence z-normalised per feature over its real steps only, its padded
    steps (all features exactly 0, what the Masking layer skips) kept at 0.

    Built-in layers only: `real` is 1 at a real step and 0 at padding (a step is real
    where any feature is not 0, Keras' Masking rule; `min(1, 1e38 |x|)` per feature,
    exact for every normal float32), the mean is the masked average, the standard
    deviation comes from UnitNormalization over time of the centred, re-zeroed
    sequence, rescaled by the root of the count of real steps (itself the time
    average of UnitNormalization(real), times the steps). A constant sequence maps
    to zeros.
    """
    steps = int(sequence.shape[1])
    mask = getattr(keras.layers.Masking(mask_value=PAD)(sequence), "_keras_mask", None)

    def part(sign: float) -> Any:
        scaled = keras.layers.Rescaling(sign * 1e38, dtype=EXACT)(sequence)
        return keras.layers.ReLU(max_value=1.0, dtype=EXACT)(scaled)

    nonzero = keras.layers.Add(dtype=EXACT)([part(1.0), part(-1.0)])
    count = keras.layers.Dense(  # any feature non-zero: the sum over features, capped at 1
        1, use_bias=False, kernel_initializer="ones", trainable=False, dtype=EXACT
    )(nonzero)
    real = keras.layers.ReLU(max_value=1.0, dtype=EXACT)(count)
    mean = keras.layers.GlobalAveragePooling1D(keepdims=True, dtype=EXACT)(sequence, mask=mask)
    centred = keras.layers.Subtract(dtype=EXACT)([sequence, mean])
    zeroed = keras.layers.Multiply(dtype=EXACT)([centred, real])
    unit = keras.layers.UnitNormalization(axis=1, dtype=EXACT)(zeroed)  # / (sqrt(n) std)
    root_n = keras.layers.Rescaling(float(steps), dtype=EXACT)(
        keras.layers.GlobalAveragePooling1D(keepdims=True, dtype=EXACT)(
            keras.layers.UnitNormalization(axis=1, dtype=EXACT)(real)
        )
    )
    return keras.layers.Multiply(dtype=EXACT)([unit, root_n])


def naive_forecast(
    kind: str, window: Any, *, horizon: int, n_targets: int, period: int | None
) -> Any:
    """The naive forecast of the target columns from a (normalised) window,
    shaped (batch, horizon, targets): `persistence` repeats the last value,
    `seasonal` repeats the last `period` steps."""
    steps = int(window.shape[1])
    if kind == "seasonal":
        if period is None or period > steps:
            raise ValueError(
                f"a seasonal naive head needs a seasonal period no longer than the window, "
                f"but got period={period}, window={steps}."
            )
        season = keras.layers.Cropping1D((steps - period, 0), dtype=EXACT)(
            targets(window, n_targets)
        )
        return _tile_steps(season, horizon)
    return _tile_steps(targets(_last_step(window), n_targets), horizon)


def residual_head(features: Any, naive: Any, *, horizon: int, n_targets: int, dtype: str) -> Any:
    """Naive forecast plus a learned correction that starts at zero: at
    initialisation the model's forecast is the naive one."""
    correction = keras.layers.Dense(
        horizon * n_targets, kernel_initializer="zeros", bias_initializer="zeros", dtype=dtype
    )(features)
    correction = keras.layers.Reshape((horizon, n_targets), dtype=dtype)(correction)
    return keras.layers.Add(dtype=dtype, name="forecast")([naive, correction])


def targets(x: Any, n_targets: int) -> Any:
    """The first `n_targets` features (targets come first in every window)."""
    features = int(x.shape[2])
    if features == n_targets:
        return x
    by_feature = keras.layers.Permute((2, 1), dtype=EXACT)(x)
    kept = keras.layers.Cropping1D((0, features - n_targets), dtype=EXACT)(by_feature)
    return keras.layers.Permute((2, 1), dtype=EXACT)(kept)


def _last_step(x: Any) -> Any:
    return keras.layers.Cropping1D((int(x.shape[1]) - 1, 0), dtype=EXACT)(x)


def _tile_steps(x: Any, length: int) -> Any:
    """Repeat a (batch, k, features) block along time and cut it to `length` steps."""
    k = int(x.shape[1])
    copies = math.ceil(length / k)
    tiled = keras.layers.Concatenate(axis=1, dtype=EXACT)([x] * copies) if copies > 1 else x
    if copies * k == length:
        return tiled
    return keras.layers.Cropping1D((0, copies * k - length), dtype=EXACT)(tiled)


def attention_pooling(sequence: Any, *, mask: Any = None) -> Any:
    """Attention-weighted sum of recurrent outputs over time (the "LSTMa" head):
    each step scored against a learned query made from the mean of the real steps
    (`mask`), a softmax over the real steps, their weighted sum."""
    units = int(sequence.shape[-1])
    summary = keras.layers.GlobalAveragePooling1D(keepdims=True)(sequence, mask=mask)
    query = keras.layers.Dense(units, use_bias=False, name="attention_query")(summary)
    pooled = keras.layers.Attention(name="attention")([query, sequence], mask=[None, mask])
    return keras.layers.Flatten()(pooled)


def causal_self_attention(states: Any) -> Any:
    """Multi-head self-attention over the recurrent states where each step sees
    only itself and the steps before it (`use_causal_mask`), so a character model
    still reads left to right. A residual block (layer norm in front) whose output
    projection starts at zero: at initialisation it passes the states through, and
    training adds attention only where it helps."""
    units = int(states.shape[-1])
    heads = max(1, units // HEAD_WIDTH)
    normed = keras.layers.LayerNormalization()(states)
    attended = keras.layers.MultiHeadAttention(
        num_heads=heads, key_dim=units // heads, name="self_attention"
    )(normed, normed, use_causal_mask=True)
    update = keras.layers.Dense(units, kernel_initializer="zeros", name="attention_out")(attended)
    return keras.layers.Add()([states, update])


# Batch norm's moving statistics forget their start (variance 1) at this rate per
# step. Keras' 0.99 needs about 460 steps to: a small set's first rounds are
# fewer, and the moving variance of the first block stayed 25x the batches' (0.40
# against 0.016 on Coffee), so inference answered one class while training was at
# 100 % (validation 0.50 for every round). 0.9 is PyTorch's default (0.1 there).
BN_MOMENTUM = 0.9


def conv_branch(sequence: Any, *, layers: int, filters: int, mask: Any = None) -> Any:
    """Conv1D + batch norm + ReLU blocks, then the average over the real steps
    (`mask`: which steps are not padding). Padded steps hold zeros, as "same"
    convolution padding does, so the first block sees a short sequence as if
    trimmed; deeper blocks also see its outputs at the padded steps next to the
    end, as LSTM-FCN's zero-padded inputs do."""
    x = sequence
    for kernel, width in zip(CONV_KERNELS[:layers], CONV_WIDTHS[:layers], strict=True):
        x = keras.layers.Conv1D(filters * width, kernel, padding="same")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = keras.layers.Activation("relu")(x)
    return keras.layers.GlobalAveragePooling1D()(x, mask=mask)
