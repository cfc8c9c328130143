"""Predictions from a bundle on new data, in the user's units.

Forecasts continue a table of history (original units, with timestamps);
classification returns labels and probabilities; a character model continues
a prompt. The MLflow pyfunc model of a bundle calls the same functions, so
`mlflow models serve` answers with the same numbers as `tuner predict`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tuner.data.sequences import class_probabilities, read_npz
from tuner.data.series import check_finite, numeric_column
from tuner.errors import InputError
from tuner.export.bundle import Bundle
from tuner.model import sample


def forecast(bundle: Bundle, history: pd.DataFrame, *, source: str = "input") -> pd.DataFrame:
    """The next `horizon` steps after the end of `history`, in original units."""
    prep = bundle.preprocessing
    columns, targets = prep["columns"], prep["targets"]
    where = Path(source)
    missing = [c for c in columns if c not in history.columns]
    if missing:
        raise InputError(
            f"{source}: column(s) {missing} missing; the model reads {columns}, the input has "
            f"{list(history.columns)}."
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
    check_finite(window, tuple(columns), where)
    out = np.asarray(bundle.model.predict(window[None], verbose=0))[0]  # (horizon, targets)
    frame = pd.DataFrame(out, columns=targets)
    frame.insert(0, "step", np.arange(1, len(frame) + 1))
    time_col, step = prep.get("time_col"), prep.get("time_step")
    if time_col and step and time_col in history.columns:
        last = pd.to_datetime(history[time_col].iloc[-1])
        frame.insert(0, time_col, last + pd.Timedelta(step) * frame["step"])
    return frame


def classify(
    bundle: Bundle, x: np.ndarray, *, lengths: np.ndarray | None = None, source: str = "input"
) -> pd.DataFrame:
    """Label and class probabilities of each sequence."""
    prep = bundle.preprocessing
    steps, features = prep["steps"], prep["n_features"]
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] != features or x.shape[1] > steps:
        raise InputError(
            f"{source}: X must be shaped (samples, up to {steps} steps, {features} features) "
            f"like the training data, but has shape {x.shape}."
        )
    if lengths is None:
        present = ~np.isnan(x).all(axis=2)
        lengths = np.where(present.any(1), x.shape[1] - np.argmax(present[:, ::-1], 1), 0)
    inside = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]
    bad = ~np.isfinite(x) & inside[:, :, None]
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(f"{source}: sequence {i} holds NaN or infinite values; fill or drop it.")
    # Short sequences are padded with the training mean: the model's padding value.
    mean = np.asarray(prep["mean"], np.float32)
    padded = np.broadcast_to(mean, (len(x), steps, features)).copy()
    padded[:, : x.shape[1]] = np.where(inside[:, :, None], x, mean)
    proba = class_probabilities(np.asarray(bundle.model.predict(padded, verbose=0)))
    classes = prep["classes"]
    frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in classes])
    frame.insert(0, "label", [classes[i] for i in proba.argmax(1)])
    return frame


def check_labels(bundle: Bundle, y: np.ndarray, *, source: str = "input") -> np.ndarray:
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


def predict_file(bundle: Bundle, path: Path) -> pd.DataFrame:
    """Forecast after a CSV/Parquet history, or classify the sequences of an `.npz`."""
    if not path.is_file():
        raise InputError(f"--input: file {path} does not exist; check the path.")
    if bundle.task == "forecasting":
        if path.suffix not in (".csv", ".parquet"):
            raise InputError(
                f"--input {path}: a forecasting model reads a .csv or .parquet history, "
                f"not {path.suffix!r}."
            )
        history = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return forecast(bundle, history, source=str(path))
    if path.suffix != ".npz":
        raise InputError(
            f"--input {path}: a classification model reads an .npz with X, not {path.suffix!r}."
        )
    arrays = read_npz(path, need=("X",))
    frame = classify(bundle, arrays["X"], lengths=arrays.get("lengths"), source=str(path))
    if "y" in arrays:
        known = check_labels(bundle, arrays["y"], source=str(path))
        frame.insert(1, "true_label", [bundle.preprocessing["classes"][i] for i in known])
    return frame


def generate(
    bundle: Bundle, prompt: str, *, length: int = 200, temperature: float = 1.0, seed: int = 0
) -> str:
    """Continue `prompt` by `length` characters sampled at `temperature`."""
    if length < 1 or temperature <= 0:
        raise InputError(
            f"--length must be at least 1 and --temperature positive, but got length={length}, "
            f"temperature={temperature}."
        )
    if not prompt:
        raise InputError("--prompt: give at least one character to start from.")
    return sample.generate(
        bundle.model,
        tuple(bundle.preprocessing["vocab"]),
        prompt,
        context=bundle.seq_len,
        length=length,
        temperature=temperature,
        seed=seed,
    )
