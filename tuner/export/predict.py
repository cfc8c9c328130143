"""`tuner predict --input FILE`: a bundle's predictions on a history table or an
`.npz` of sequences (the predictions themselves: `tuner.model.serving`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuner.data.sequences import read_npz
from tuner.errors import InputError, Opt
from tuner.export.bundle import Bundle
from tuner.tasks.base import get_task

_READERS = (".csv", ".parquet", ".npz")


def read_input(path: Path) -> pd.DataFrame | dict[str, np.ndarray]:
    """The rows of a CSV/Parquet history or the arrays of an `.npz`, read before any
    model loads: a file that cannot be read is one line, not a traceback."""
    if not path.is_file():
        raise InputError(f"{Opt('input')}: file {path} does not exist; check the path.")
    if path.suffix not in _READERS:
        raise InputError(
            f"{Opt('input', path)}: unknown file type {path.suffix!r}; a forecasting model reads "
            "a .csv or .parquet history, a classification model an .npz with X."
        )
    if path.stat().st_size == 0:
        raise InputError(f"{Opt('input', path)}: the file is empty; pass a file with data.")
    if path.suffix == ".npz":
        return read_npz(path, need=("X",))
    with path.open("rb") as f:
        if path.suffix == ".csv" and b"\0" in f.read(1 << 16):
            raise InputError(
                f"{Opt('input', path)}: holds NUL bytes, so it is a binary file, not CSV text; "
                "pass the CSV history."
            )
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except UnicodeDecodeError as e:
        raise InputError(
            f"{Opt('input', path)}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
            f"{e.start}); re-save the file as UTF-8 CSV."
        ) from None
    except (ValueError, OSError, pd.errors.ParserError) as e:  # pyarrow's errors are ValueErrors
        text = str(e).replace(f"'{path}'", "").replace(str(path), "").strip()  # named once
        first = text.splitlines()[0][:100] if text else type(e).__name__
        raise InputError(
            f"{Opt('input', path)}: cannot be read as {path.suffix[1:]} ({first}); check the file."
        ) from None


def predict_file(bundle: Bundle, path: Path, rows: Any = None) -> pd.DataFrame:
    """Forecast after a CSV/Parquet history, or classify the sequences of an `.npz`
    (`Task.predict_file`; `rows`: what `read_input` read from `path`, else it is
    read here)."""
    rows = read_input(path) if rows is None else rows
    return get_task(bundle.task).predict_file(bundle, path, rows)


def check_out(path: Path | None) -> None:
    """`--out` must name a file in a folder that exists and is writable: checked
    before the model loads, so a typo costs no load."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{Opt('out', path)}: is a folder; pass a file name, e.g. {path}/out.csv.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(
            f"{Opt('out', path)}: the folder {folder} does not exist; create it first."
        )
    if not os.access(folder, os.W_OK):
        raise InputError(f"{Opt('out', path)}: the folder {folder} is not writable.")
