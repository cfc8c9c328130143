"""Reading a table (CSV or Parquet) for forecasting and for predictions: its
header, the wanted columns, numbers and timestamps, each problem in one line that
names the file, the column and the row.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from tuner.errors import InputError, Opt


def read_table(path: Path, wanted: list[str]) -> pd.DataFrame:
    """The wanted columns of a CSV or Parquet file; a missing column is an input error."""
    header = _header(path)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InputError(
            f"{path}: column(s) {_few(missing)} not found; the file has {_few(header)}; check "
            f"{Opt('target')}, {Opt('covariates')} and {Opt('time_col')}."
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


def row_of(path: Path, index: int) -> str:
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
            f"{path}: column {name!r} must be numeric, but {row_of(path, i)} holds "
            f"{column.iloc[i]!r} ({int(bad.sum())} such value(s)); fix or drop those rows."
        )
    return converted


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def in_float32_range(column: pd.Series, path: Path) -> pd.Series:
    """Values a float32 model can hold (a finite 1e300 is not missing, it is too large)."""
    raw = column.to_numpy(dtype=np.float64, na_value=np.nan)
    huge = np.isfinite(raw) & (np.abs(raw) > _FLOAT32_MAX)
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        raise InputError(
            f"{path}: column {column.name!r} holds {raw[i]:g} at {row_of(path, i)}, beyond the "
            f"float32 range the model trains in (about {_FLOAT32_MAX:.1e}); rescale the column."
        )
    return column


def check_finite(
    raw: np.ndarray,
    columns: tuple[str, ...],
    path: Path,
    *,
    first_row: int = 0,
    fix: str | None = None,
) -> None:
    """Every value finite; the first that is not named by its row in the file
    (`raw` starts at row `first_row`)."""
    bad = ~np.isfinite(raw)
    if not bad.any():
        return
    row, col = (int(v[0]) for v in np.nonzero(bad))
    fix = fix or f"fix the file or pass {Opt('fill', 'interpolate')}"
    raise InputError(
        f"{path}: {int(bad.sum())} missing (NaN) or infinite value(s), the first in column "
        f"{columns[col]!r} at {row_of(path, first_row + row)}; values must be finite: {fix}."
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
