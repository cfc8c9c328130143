"""`tuner predict --input FILE`: a bundle's predictions on a history table or an
`.npz` of sequences (the predictions themselves: `tuner.model.serving`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tuner.data.sequences import read_npz
from tuner.errors import InputError
from tuner.export.bundle import Bundle
from tuner.model.serving import check_labels, classify, forecast


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
