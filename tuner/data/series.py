"""Forecasting data: a table of time series, checked, split in time order and scaled.

Targets come first, covariates after them; the scaler is fit on the training
rows only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
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
from tuner.data.windows import SPLITS, check_seq_len, make_windows
from tuner.errors import InputError


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
    frame = _read_table(spec.path, wanted)
    timestamps = _check_time(frame, spec) if spec.time_col else None
    values = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        values[:, j] = _in_float32_range(numeric_column(frame[name], name, spec.path), spec.path)
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


def _read_table(path: Path, wanted: list[str]) -> pd.DataFrame:
    """The wanted columns of a CSV or Parquet file; a missing column is an input error."""
    header = _header(path)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InputError(
            f"{path}: column(s) {_few(missing)} not found; the file has {_few(header)}; "
            "check --target, --covariates and --time-col."
        )
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path, columns=wanted)
        else:
            frame = pd.read_csv(path, usecols=wanted)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file has no header and no rows; give a table.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{path}: cannot be read as a {path.suffix[1:]} table ({first})."
        ) from None
    if frame.empty:
        raise InputError(f"{path}: the table has a header but no rows; give a table with data.")
    return frame


def _header(path: Path) -> list[str]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq  # deferred: only Parquet files need it

            return list(pq.read_schema(path).names)
        names = next(csv.reader(io.StringIO(_first_line(path))), [])
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file has no header and no rows; give a table.") from None
    except (pd.errors.ParserError, csv.Error, UnicodeDecodeError, OSError, ValueError) as e:
        raise InputError(
            f"{path}: cannot be read as a {path.suffix[1:]} table ({_first(e)})."
        ) from None

    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"{path}: the header names column(s) {repeated} more than once; give every "
            "column its own name."
        )
    if not names:
        raise InputError(f"{path}: the file has no header and no rows; give a table.")
    return names


_MAX_HEADER = 1 << 20  # bytes of a CSV header line read at most


def _few(names: list[str], limit: int = 8) -> str:
    """A list of names for an error line: the first few, each cut to 40 characters."""
    shown = [n if len(n) <= 40 else n[:37] + "..." for n in names[:limit]]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more}"


def _first_line(path: Path) -> str:
    with path.open("rb") as f:
        line = f.readline(_MAX_HEADER + 1)
    if len(line) > _MAX_HEADER:
        raise InputError(
            f"{path}: the first line is longer than {_MAX_HEADER >> 20} MiB, so it is not a "
            "CSV header; check that the file is a CSV table."
        )
    if b"\x00" in line:
        raise InputError(f"{path}: the header holds NUL bytes, so the file is not a CSV table.")
    try:
        return line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: the header is not UTF-8 text ({e.reason} at byte {e.start}); "
            "re-save the file as UTF-8."
        ) from None


def _first(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _row(path: Path, index: int) -> str:
    """Where a data row is, in the user's terms (CSV: the line number, header counted)."""
    return f"row {index + 1} (line {index + 2})" if path.suffix == ".csv" else f"row {index + 1}"


def numeric_column(column: pd.Series, name: str, path: Path) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna() & column.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: column {name!r} must be numeric, but {_row(path, i)} holds "
            f"{column.iloc[i]!r} ({int(bad.sum())} such value(s)); fix or drop those rows."
        )
    return converted


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _in_float32_range(column: pd.Series, path: Path) -> pd.Series:
    """Values a float32 model can hold (a finite 1e300 is not missing, it is too large)."""
    raw = column.to_numpy(dtype=np.float64, na_value=np.nan)
    huge = np.isfinite(raw) & (np.abs(raw) > _FLOAT32_MAX)
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        raise InputError(
            f"{path}: column {column.name!r} holds {raw[i]:g} at {_row(path, i)}, beyond the "
            f"float32 range the model trains in (about {_FLOAT32_MAX:.1e}); rescale the column."
        )
    return column


def check_finite(
    raw: np.ndarray,
    columns: tuple[str, ...],
    path: Path,
    *,
    first_row: int = 0,
    fix: str = "fix the file or pass --fill interpolate",
) -> None:
    """Every value finite; the first that is not named by its row in the file
    (`raw` starts at row `first_row`)."""
    bad = ~np.isfinite(raw)
    if not bad.any():
        return
    row, col = (int(v[0]) for v in np.nonzero(bad))
    raise InputError(
        f"{path}: {int(bad.sum())} missing (NaN) or infinite value(s), the first in column "
        f"{columns[col]!r} at {_row(path, first_row + row)}; values must be finite: {fix}."
    )


# Integer dates as spreadsheets and exports write them: 19580329, 195803.
_INTEGER_DATES = {8: "%Y%m%d", 6: "%Y%m"}


def parse_times(column: pd.Series, *, where: str) -> pd.Series:
    """Timestamps of a time column (unparsable values become NaT). Integers are
    read as YYYYMMDD or YYYYMM dates, never as nanoseconds since 1970; other
    integers stop with a line saying how to write the dates, as do fractional numbers
    (a spreadsheet's serial days). Timestamps with UTC offsets are read in UTC: a
    daylight-saving change mixes +01:00 and +02:00 in one column."""
    if pd.api.types.is_float_dtype(column) and column.notna().any():
        first = column[column.notna()].iloc[0]
        raise InputError(
            f"{where}: time column {column.name!r} holds numbers such as {first:g}, which are "
            "not dates (spreadsheet serial days?); write the dates as ISO 8601 "
            "(2001-12-29 13:00) or as YYYYMMDD."
        )
    if not pd.api.types.is_integer_dtype(column):
        try:
            times = pd.to_datetime(column, errors="coerce")
        except (ValueError, TypeError):  # mixed UTC offsets, or offsets beside none
            times = pd.to_datetime(column, errors="coerce", utc=True)
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        return times
    digits = column.abs().astype(str).str.len()
    width = int(digits.iloc[0]) if len(column) else 0
    if width not in _INTEGER_DATES or not (digits == width).all():
        raise InputError(
            f"{where}: time column {column.name!r} holds integers such as {column.iloc[0]}, "
            "which are not dates in YYYYMMDD or YYYYMM form; write the dates as ISO 8601 "
            "(2001-12-29) or as YYYYMMDD."
        )
    return pd.to_datetime(column.astype(str), format=_INTEGER_DATES[width], errors="coerce")


def _check_time(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    column = frame[spec.time_col]
    times = parse_times(column, where=str(spec.path))
    bad = times.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{spec.path}: time column {spec.time_col!r} has {int(bad.sum())} value(s) that are "
            f"not timestamps, the first at {_row(spec.path, i)}: {column.iloc[i]!r}; fix them."
        )
    step = times.diff().to_numpy()[1:]
    if (step < np.timedelta64(0)).any():
        i = int(np.flatnonzero(step < np.timedelta64(0))[0]) + 1
        raise InputError(
            f"{spec.path}: time column {spec.time_col!r} must be sorted ascending, but "
            f"{_row(spec.path, i)} ({column.iloc[i]}) comes before the row above it; "
            "sort the file by time."
        )
    if (step == np.timedelta64(0)).any():
        i = int(np.flatnonzero(step == np.timedelta64(0))[0]) + 1
        raise InputError(
            f"{spec.path}: time column {spec.time_col!r} repeats {column.iloc[i]} at "
            f"{_row(spec.path, i)}; timestamps must be unique: drop or aggregate duplicates."
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
            f"{spec.path}: --cv {spec.cv} leaves folds of {val_end - train_end} rows before the "
            f"test split ({end} rows), fewer than a training window plus the horizon "
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
                f"plus the horizon ({spec.horizon}) needs at least {needed[name]}; "
                "use more data, a shorter --horizon or another --split."
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
