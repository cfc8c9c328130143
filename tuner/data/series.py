"""Forecasting data: a table of time series, checked, split in time order and scaled.

Targets come first, covariates after them; the scaler is fit on the training
rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from tuner.data.spec import (
    DatasetInfo,
    DatasetSpec,
    Windows,
    fingerprint,
    rolling_origin,
    split_borders,
)
from tuner.data.tables import (
    check_finite,
    in_float32_range,
    numeric_column,
    parse_times,
    read_table,
    row_of,
)
from tuner.data.windows import SPLITS, check_seq_len, make_windows
from tuner.errors import InputError, Opt


@dataclass(frozen=True, eq=False)
class SeriesData:
    """A loaded, split and scaled multivariate series; targets are the first columns."""

    spec: DatasetSpec
    columns: tuple[str, ...]
    scaled: np.ndarray  # (rows, features) float32, standardised on the training rows
    mean: np.ndarray
    scale: np.ndarray
    borders: tuple[int, int, int]  # end of train, end of validation, end of test
    timestamps: np.ndarray | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def n_targets(self) -> int:
        return len(self.spec.target)

    @property
    def info(self) -> DatasetInfo:
        """Under cross-validation the training part is the first fold's, the shortest."""
        cv = self.spec.cv or 0
        n_train = rolling_origin(self.borders[1], cv)[0][0] if cv else self.borders[0]
        return DatasetInfo(
            task="forecasting",
            n_features=len(self.columns),
            n_targets=self.n_targets,
            n_rows=len(self.scaled),
            n_train=n_train,
            max_seq_len=n_train - self.spec.horizon,
            horizon=self.spec.horizon,
            seasonal_period=self.spec.seasonal_period,
            lookback=self.spec.lookback,
            cv=cv,
        )

    def folds(self) -> list[SeriesData]:
        """Rolling-origin folds over the rows before the test border, each scaled
        on its own training rows."""
        if not self.spec.cv:
            return []
        raw = self.scaled * self.scale + self.mean
        out = []
        for train_end, val_end in rolling_origin(self.borders[1], self.spec.cv):
            mean, scale = _fit_scaler(raw[:train_end])
            out.append(
                replace(
                    self,
                    spec=replace(self.spec, cv=0),
                    scaled=((raw - mean) / scale).astype(np.float32),
                    mean=mean,
                    scale=scale,
                    borders=(train_end, val_end, val_end),
                )
            )
        return out

    def windows(self, seq_len: int) -> dict[str, Windows]:
        return forecast_windows(self, seq_len)

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        return forecast_metrics(self, y_true, y_pred)

    def baselines(self) -> dict[str, dict[str, float]]:
        return forecast_baselines(self)

    def preprocessing(self) -> dict[str, Any]:
        """What a model trained on this data needs to read new data (JSON-able)."""
        step = None
        if self.timestamps is not None and len(self.timestamps) > 1:
            step = str(pd.Timedelta(np.median(np.diff(self.timestamps))))
        return {
            "task": "forecasting",
            "columns": list(self.columns),
            "targets": list(self.spec.target),
            "time_col": self.spec.time_col,
            "time_step": step,
            "horizon": self.spec.horizon,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    def to_original_units(self, y: np.ndarray) -> np.ndarray:
        """Undo the scaling of target values shaped (..., n_targets)."""
        k = self.n_targets
        original: np.ndarray = y * self.scale[:k] + self.mean[:k]
        return original


def load_series(spec: DatasetSpec) -> SeriesData:
    """Read the table, check it, split it chronologically and scale it.

    Memory: the parsed table holds the wanted columns only; the values are
    copied once into a float32 array, which is then scaled in place.
    """
    columns = (*spec.target, *spec.covariates)
    wanted = [*columns, *([spec.time_col] if spec.time_col else [])]
    frame = read_table(spec.path, wanted)
    timestamps = _check_time(frame, spec) if spec.time_col else None
    values = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        values[:, j] = in_float32_range(numeric_column(frame[name], name, spec.path), spec.path)
    del frame
    if spec.fill:
        values = _fill(values, spec.fill)
    check_finite(values, columns, spec.path)
    borders = split_borders(len(values), spec)
    _check_lengths(borders, spec)
    _check_varies(values[: borders[0], : len(spec.target)], spec)
    _check_folds(borders[1], spec)
    mean, scale = _fit_scaler(values[: borders[0]])
    values -= mean
    values /= scale
    return SeriesData(
        spec=spec,
        columns=columns,
        scaled=values,
        mean=mean,
        scale=scale,
        borders=borders,
        timestamps=timestamps,
        fingerprint=fingerprint(
            spec,
            rows=len(values),
            columns=list(columns),
            targets=list(spec.target),
            horizon=spec.horizon,
            borders=borders,
        ),
    )


def _check_varies(train_targets: np.ndarray, spec: DatasetSpec) -> None:
    """A target that never changes over the training rows has nothing to learn."""
    for j, name in enumerate(spec.target):
        column = train_targets[:, j]
        if len(column) and np.all(column == column[0]):
            raise InputError(
                f"{spec.path}: target column {name!r} is constant ({column[0]:g}) over the "
                f"{len(column)} training rows; forecast a column that changes."
            )


def _fit_scaler(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scaler = StandardScaler().fit(rows)
    return scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)


def _fill(values: np.ndarray, how: str) -> np.ndarray:
    frame = pd.DataFrame(values)
    if how == "interpolate":
        frame = frame.interpolate(limit_direction="both")
    else:
        frame = frame.ffill().bfill()
    filled: np.ndarray = frame.to_numpy(dtype=np.float32, copy=True)
    return filled


def _check_time(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    column = frame[spec.time_col]
    times = parse_times(column, where=str(spec.path))
    bad = times.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{spec.path}: time column {spec.time_col!r} has {int(bad.sum())} value(s) that are "
            f"not timestamps, the first at {row_of(spec.path, i)}: {column.iloc[i]!r}; fix them."
        )
    step = times.diff().to_numpy()[1:]
    if (step < np.timedelta64(0)).any():
        i = int(np.flatnonzero(step < np.timedelta64(0))[0]) + 1
        raise InputError(
            f"{spec.path}: time column {spec.time_col!r} must be sorted ascending, but "
            f"{row_of(spec.path, i)} ({column.iloc[i]}) comes before the row above it; "
            "sort the file by time."
        )
    if (step == np.timedelta64(0)).any():
        i = int(np.flatnonzero(step == np.timedelta64(0))[0]) + 1
        raise InputError(
            f"{spec.path}: time column {spec.time_col!r} repeats {column.iloc[i]} at "
            f"{row_of(spec.path, i)}; timestamps must be unique: drop or aggregate duplicates."
        )
    stamps: np.ndarray = times.to_numpy()
    return stamps


def _check_folds(end: int, spec: DatasetSpec) -> None:
    """Every rolling-origin fold needs a horizon to score and a window to train on."""
    if not spec.cv:
        return
    train_end, val_end = rolling_origin(end, spec.cv)[0]
    if val_end - train_end < spec.horizon or train_end < spec.horizon + 2:
        raise InputError(
            f"{spec.path}: {Opt('cv', spec.cv)} leaves folds of {val_end - train_end} rows before "
            f"the test split ({end} rows), fewer than a training window plus the horizon "
            f"({spec.horizon}) needs; use fewer folds."
        )


def _check_lengths(borders: tuple[int, int, int], spec: DatasetSpec) -> None:
    """Every split must hold at least one horizon; train also needs an input step."""
    train_end, val_end, test_end = borders
    sizes = {"training": train_end, "validation": val_end - train_end, "test": test_end - val_end}
    needed = {"training": spec.horizon + 2, "validation": spec.horizon, "test": spec.horizon}
    for name, size in sizes.items():
        if size < needed[name]:
            raise InputError(
                f"{spec.path}: series too short: the {name} split has {size} rows, but a window "
                f"plus the horizon ({spec.horizon}) needs at least {needed[name]}; use more data, "
                f"a shorter {Opt('horizon')} or another {Opt('split')}."
            )


def split_range(borders: tuple[int, int, int], split: str, seq_len: int) -> tuple[int, int]:
    """Rows whose values are targets for `split` (train targets start after one window)."""
    train_end, val_end, test_end = borders
    return {
        "train": (seq_len, train_end),
        "val": (train_end, val_end),
        "test": (val_end, test_end),
    }[split]


def forecast_windows(data: SeriesData, seq_len: int) -> dict[str, Windows]:
    """Inputs (n, seq_len, features) and targets (n, horizon, n_targets) of every split."""
    check_seq_len(seq_len, data)
    out = {}
    for split in SPLITS:
        start, end = split_range(data.borders, split, seq_len)
        out[split] = make_windows(
            data.scaled,
            seq_len=seq_len,
            horizon=data.spec.horizon,
            n_targets=data.n_targets,
            start=start,
            end=end,
        )
    return out


def forecast_metrics(data: SeriesData, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE and MAE on the standardised scale and in original units."""
    err = y_pred - y_true
    err_orig = data.to_original_units(y_pred) - data.to_original_units(y_true)
    return {
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "mse_orig": float(np.mean(err_orig**2)),
        "mae_orig": float(np.mean(np.abs(err_orig))),
    }


def forecast_baselines(data: SeriesData) -> dict[str, dict[str, float]]:
    """Persistence and seasonal naive on the validation and test targets.

    The targets of a split do not depend on the window length (they are every
    horizon-long stretch inside the split), so the baselines are comparable with
    any trial.
    """
    out: dict[str, dict[str, float]] = {}
    period = data.spec.seasonal_period
    for split in ("val", "test"):
        start, end = split_range(data.borders, split, 0)
        y_true = _targets(data, start, end)
        out[f"persistence_{split}"] = forecast_metrics(data, y_true, _persistence(data, start, end))
        if period:
            seasonal = _seasonal_naive(data, start, end, period)
            out[f"seasonal_naive_{split}"] = forecast_metrics(data, y_true, seasonal)
    return out


def _origins(data: SeriesData, start: int, end: int) -> np.ndarray:
    """First target row of every window whose horizon fits in [start, end)."""
    return np.arange(start, end - data.spec.horizon + 1)


def _targets(data: SeriesData, start: int, end: int) -> np.ndarray:
    rows = _origins(data, start, end)[:, None] + np.arange(data.spec.horizon)
    return data.scaled[rows, : data.n_targets]


def _persistence(data: SeriesData, start: int, end: int) -> np.ndarray:
    last = data.scaled[_origins(data, start, end) - 1, : data.n_targets]
    return np.repeat(last[:, None, :], data.spec.horizon, axis=1)


def _seasonal_naive(data: SeriesData, start: int, end: int, period: int) -> np.ndarray:
    # Step h repeats the value one period before it; steps beyond one period
    # repeat the last observed cycle.
    steps = np.arange(data.spec.horizon) % period - period
    rows = _origins(data, start, end)[:, None] + steps
    return data.scaled[rows, : data.n_targets]
