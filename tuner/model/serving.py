"""Predictions from a saved model on raw input, in the data's own units: the one
implementation behind `tuner predict`, the Python API and the MLflow pyfunc
models (the registry's champion, a bundle's `mlflow_model/`), so every way of
asking a model answers with the same numbers.

Forecasts continue a table of history (original units, with timestamps);
classification returns labels and probabilities; a character model continues
a prompt. A bad request raises `InputError` with one line saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuner.data.sequences import class_probabilities, sequence_array, sequence_lengths
from tuner.data.tables import check_finite, numeric_column, parse_times
from tuner.errors import InputError, Opt
from tuner.model import sample
from tuner.tasks.base import get_task


@dataclass(frozen=True)
class SavedModel:
    """A saved model (in the data's units) with what it needs to read raw input: as
    the MLflow pyfunc holds it, and the base of an exported bundle."""

    model: Any  # keras.Model
    preprocessing: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.preprocessing["task"])

    @property
    def seq_len(self) -> int:
        return int(self.preprocessing.get("seq_len") or self.preprocessing.get("steps") or 1)


def forecast(bundle: SavedModel, history: pd.DataFrame, *, source: str = "input") -> pd.DataFrame:
    """The next `horizon` steps after the end of `history`, in original units."""
    prep = bundle.preprocessing
    columns, targets = prep["columns"], prep["targets"]
    where = Path(source)
    missing = [c for c in columns if c not in history.columns]
    if missing:
        given = f", the input has {list(history.columns)}" if len(history.columns) else ""
        raise InputError(
            f"{source}: column(s) {missing} missing; the model reads {columns}{given}."
        )
    seq_len = bundle.seq_len
    if len(history) < seq_len:
        raise InputError(
            f"{source}: too little history: {len(history)} rows, but the model reads windows of "
            f"seq_len={seq_len} rows; give at least {seq_len} rows."
        )
    values = np.stack(
        [numeric_column(history[c], c, where).to_numpy(np.float64) for c in columns], 1
    )
    window = values[-seq_len:].astype(np.float32)
    fix = f"the model reads the last {seq_len} rows; fill or drop the missing values there"
    check_finite(window, tuple(columns), where, first_row=len(values) - seq_len, fix=fix)
    out = np.asarray(bundle.model.predict(window[None], verbose=0))[0]  # (horizon, targets)
    frame = pd.DataFrame(out, columns=targets)
    frame.insert(0, "step", np.arange(1, len(frame) + 1))
    time_col, step = prep.get("time_col"), prep.get("time_step")
    if time_col and step and time_col in history.columns:
        last = parse_times(history[time_col].iloc[-1:], where=source).iloc[0]
        if pd.isna(last):
            raise InputError(
                f"{source}: the last row's {time_col!r} ({history[time_col].iloc[-1]!r}) is not a "
                "timestamp, so the forecasts cannot be dated; fix that row."
            )
        frame.insert(0, time_col, last + pd.Timedelta(step) * frame["step"])
    return frame


def classify(
    bundle: SavedModel, x: np.ndarray, *, lengths: np.ndarray | None = None, source: str = "input"
) -> pd.DataFrame:
    """Label and class probabilities of each sequence."""
    prep = bundle.preprocessing
    steps, features = prep["steps"], prep["n_features"]
    x = sequence_array(x, Path(source))  # the training data's checks and messages
    if x.shape[2] != features or x.shape[1] > steps:
        raise InputError(
            f"{source}: X must be shaped (samples, up to {steps} steps, {features} features) "
            f"like the training data, but has shape {x.shape}."
        )
    lengths = sequence_lengths(x, lengths, Path(source))
    inside = np.arange(x.shape[1])[None, :] < lengths[:, None]
    # Short sequences are padded with the training mean: the model's padding value.
    mean = np.asarray(prep["mean"], np.float32)
    padded = np.broadcast_to(mean, (len(x), steps, features)).copy()
    padded[:, : x.shape[1]] = np.where(inside[:, :, None], x, mean)
    proba = class_probabilities(np.asarray(bundle.model.predict(padded, verbose=0)))
    classes = prep["classes"]
    frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in classes])
    frame.insert(0, "label", [classes[i] for i in proba.argmax(1)])
    return frame


def check_labels(bundle: SavedModel, y: np.ndarray, *, source: str = "input") -> np.ndarray:
    """Indices of known labels; a label the model never saw is an input error."""
    classes = bundle.preprocessing["classes"]
    labels = [str(v) for v in np.asarray(y).astype(str)]
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise InputError(
            f"{source}: y holds class(es) {unknown[:5]} the model does not know; it knows "
            f"{classes}."
        )
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[c] for c in labels])


def generate(
    bundle: SavedModel, prompt: str, *, length: int = 200, temperature: float = 1.0, seed: int = 0
) -> str:
    """Continue `prompt` by `length` characters sampled at `temperature`."""
    if length < 1 or temperature <= 0:
        raise InputError(
            f"{Opt('length')} must be at least 1 and {Opt('temperature')} positive, but got "
            f"length={length}, temperature={temperature}."
        )
    if not prompt:
        raise InputError(f"{Opt('prompt')}: give at least one character to start from.")
    return sample.generate(
        bundle.model,
        tuple(bundle.preprocessing["vocab"]),
        prompt,
        context=bundle.seq_len,
        length=length,
        temperature=temperature,
        seed=seed,
    )


def respond(served: SavedModel, request: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """A served model's answer to one request (`Task.respond`): history rows ->
    forecast rows (with their timestamps); sequences (samples, steps, features; NaN
    after a sequence's end) -> label and probabilities; a `prompt` column -> the
    prompts continued (`params`: length, temperature, seed)."""
    return get_task(served.task).respond(served, request, params or {})


def request_example(data: Any, seq_len: int) -> tuple[Any, dict[str, Any] | None]:
    """A request in the raw form a served model takes, from the validation part (the
    test part is never shown), and its params: history rows, two sequences, or a prompt."""
    return get_task(data.spec.task).request_example(data, seq_len)
