"""Datasets: definitions, loading, chronological splits, scaling, fingerprint.

A dataset definition (`datasets/NAME.toml`) holds the options a user would
pass on the command line. Loading turns it into a `SeriesData`: the series in
original units and standardised with a scaler fit on the training rows only.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from tuner._errors import InputError
from tuner._paths import builtin_dir

_TASKS = ("forecasting",)
_TABLE_SUFFIXES = (".csv", ".parquet")
_DEFINITION_KEYS = {
    "description",
    "task",
    "file",
    "time_col",
    "target",
    "covariates",
    "horizon",
    "seasonal_period",
    "split",
    "fill",
    "source",
}


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """What to load and how to split it."""

    name: str
    path: Path
    task: str = "forecasting"
    description: str = ""
    time_col: str | None = None
    target: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    horizon: int = 1
    seasonal_period: int | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    fill: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = f"dataset '{self.name}'"
        if self.task not in _TASKS:
            raise InputError(f"{where}: task must be one of {_TASKS}, but got task={self.task!r}.")
        if not self.target:
            raise InputError(f"{where}: needs at least one target column; pass --target COL.")
        if self.horizon < 1:
            raise InputError(
                f"{where}: horizon must be at least 1, but got horizon={self.horizon}; "
                "pass --horizon N with N >= 1."
            )
        if len(self.split) != 3 or any(f <= 0 for f in self.split) or sum(self.split) > 1 + 1e-9:
            raise InputError(
                f"{where}: split must be three positive fractions (train, validation, test) "
                f"summing to at most 1, but got split={list(self.split)}."
            )
        if self.fill not in (None, "interpolate"):
            raise InputError(
                f"{where}: fill must be 'interpolate' or absent, but got fill={self.fill!r}."
            )


@dataclass(frozen=True)
class DatasetInfo:
    """What a search space may know about the data (SPEC section 4)."""

    task: str
    n_features: int
    n_targets: int
    n_rows: int
    n_train: int
    horizon: int
    seasonal_period: int | None

    @property
    def max_seq_len(self) -> int:
        """Longest input window the training split can supply (one window at least)."""
        return self.n_train - self.horizon

    def seq_len_choices(self, multiples: tuple[float, ...] = (0.5, 1, 2, 3)) -> list[int]:
        """Window lengths as multiples of the seasonal period (or horizon) that fit the data."""
        base = self.seasonal_period or self.horizon
        lengths = sorted({max(2, round(m * base)) for m in multiples})
        fitting = [n for n in lengths if n <= self.max_seq_len]
        return fitting or [min(lengths[0], self.max_seq_len)]


@dataclass(frozen=True, eq=False)
class SeriesData:
    """A loaded, split and scaled multivariate series; targets are the first columns."""

    spec: DatasetSpec
    columns: tuple[str, ...]
    raw: np.ndarray  # (rows, features), original units, float32
    scaled: np.ndarray  # (rows, features), standardised on the training rows
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
        return DatasetInfo(
            task=self.spec.task,
            n_features=len(self.columns),
            n_targets=self.n_targets,
            n_rows=len(self.raw),
            n_train=self.borders[0],
            horizon=self.spec.horizon,
            seasonal_period=self.spec.seasonal_period,
        )

    def to_original_units(self, y: np.ndarray) -> np.ndarray:
        """Undo the scaling of target values shaped (..., n_targets)."""
        k = self.n_targets
        return y * self.scale[:k] + self.mean[:k]


def builtin_datasets() -> dict[str, DatasetSpec]:
    """Built-in dataset definitions by name."""
    folder = builtin_dir("datasets")
    return {p.stem: _read_definition(p) for p in sorted(folder.glob("*.toml"))}


def resolve_dataset(
    name_or_path: str, *, target: tuple[str, ...] | None = None, horizon: int | None = None
) -> DatasetSpec:
    """Turn `--dataset NAME|PATH` (plus overrides) into a `DatasetSpec`."""
    spec = _lookup(name_or_path, target=target)
    overrides: dict[str, Any] = {}
    if target:
        overrides["target"] = target
    if horizon is not None:
        overrides["horizon"] = horizon
    return replace(spec, **overrides) if overrides else spec


def _lookup(name_or_path: str, *, target: tuple[str, ...] | None) -> DatasetSpec:
    path = Path(name_or_path)
    looks_like_path = path.suffix != "" or "/" in name_or_path
    if not looks_like_path:
        known = builtin_datasets()
        if name_or_path not in known:
            raise InputError(
                f"--dataset: unknown dataset name {name_or_path!r}; built-in names are "
                f"{sorted(known)} (see `tuner datasets`), or pass a path to a file."
            )
        return known[name_or_path]
    if not path.is_file():
        raise InputError(f"--dataset: file {name_or_path!r} does not exist; check the path.")
    if path.suffix == ".toml":
        return _read_definition(path)
    if path.suffix in _TABLE_SUFFIXES:
        if not target:
            raise InputError(
                f"--dataset {name_or_path}: a table needs its target column(s); "
                "pass --target COL[,COL]."
            )
        return DatasetSpec(name=path.stem, path=path, target=target)
    raise InputError(
        f"--dataset {name_or_path}: unknown file type {path.suffix!r}; "
        f"use one of {[*_TABLE_SUFFIXES, '.toml']}."
    )


def _read_definition(path: Path) -> DatasetSpec:
    with path.open("rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"dataset definition {path}: not valid TOML ({e}).") from None
    unknown = set(raw) - _DEFINITION_KEYS
    if unknown:
        raise InputError(
            f"dataset definition {path}: unknown keys {sorted(unknown)}; "
            f"allowed keys are {sorted(_DEFINITION_KEYS)}."
        )
    if "file" not in raw:
        raise InputError(f"dataset definition {path}: needs a 'file' key naming the data file.")
    target = raw.get("target", ())
    return DatasetSpec(
        name=path.stem,
        path=(path.parent / raw["file"]).resolve(),
        task=raw.get("task", "forecasting"),
        description=raw.get("description", ""),
        time_col=raw.get("time_col"),
        target=(target,) if isinstance(target, str) else tuple(target),
        covariates=tuple(raw.get("covariates", ())),
        horizon=int(raw.get("horizon", 1)),
        seasonal_period=raw.get("seasonal_period"),
        split=tuple(raw.get("split", (0.7, 0.15, 0.15))),
        fill=raw.get("fill"),
        source=raw.get("source", ""),
    )


def load_series(spec: DatasetSpec) -> SeriesData:
    """Read the table, check it, split it chronologically and scale it."""
    if not spec.path.is_file():
        raise InputError(f"dataset '{spec.name}': data file {spec.path} does not exist.")
    frame = _read_table(spec.path)
    columns = (*spec.target, *spec.covariates)
    missing = [c for c in (*columns, *([spec.time_col] if spec.time_col else [])) if c not in frame]
    if missing:
        raise InputError(
            f"{spec.path}: column(s) {missing} not found; the file has {list(frame.columns)}."
        )
    values = frame[list(columns)]
    if spec.fill == "interpolate":
        values = values.interpolate(limit_direction="both")
    raw = values.to_numpy(dtype=np.float32)
    _check_finite(raw, spec)
    borders = _split_borders(len(raw), spec)
    scaler = StandardScaler().fit(raw[: borders[0]])
    scaled = scaler.transform(raw).astype(np.float32)
    timestamps = frame[spec.time_col].to_numpy() if spec.time_col else None
    return SeriesData(
        spec=spec,
        columns=columns,
        raw=raw,
        scaled=scaled,
        mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32),
        borders=borders,
        timestamps=timestamps,
        fingerprint=_fingerprint(spec, columns, len(raw), borders),
    )


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _check_finite(raw: np.ndarray, spec: DatasetSpec) -> None:
    bad = ~np.isfinite(raw)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    raise InputError(
        f"{spec.path}: {int(bad.sum())} NaN or infinite value(s), first at data row "
        f"{int(rows[0])}; values must be finite, or set fill = 'interpolate'."
    )


def _split_borders(n_rows: int, spec: DatasetSpec) -> tuple[int, int, int]:
    train, val, test = spec.split
    train_end = int(n_rows * train)
    val_end = train_end + int(n_rows * val)
    whole = sum(spec.split) > 1 - 1e-9
    test_end = n_rows if whole else min(n_rows, val_end + int(n_rows * test))
    return train_end, val_end, test_end


def _fingerprint(
    spec: DatasetSpec, columns: tuple[str, ...], n_rows: int, borders: tuple[int, int, int]
) -> dict[str, Any]:
    digest = hashlib.sha256(spec.path.read_bytes()).hexdigest()
    return {
        "name": spec.name,
        "file": spec.path.name,
        "sha256": digest,
        "rows": n_rows,
        "columns": list(columns),
        "targets": list(spec.target),
        "horizon": spec.horizon,
        "split_borders": list(borders),
    }
