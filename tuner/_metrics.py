"""Forecast metrics and the naive baselines computed on the same target windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tuner._windows import split_range

if TYPE_CHECKING:
    from tuner._series import SeriesData


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
