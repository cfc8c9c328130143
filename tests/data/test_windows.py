"""Windows, the training-only scaler and the persistence baseline."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series
from tuner.data.windows import WindowCache, make_windows


def test_windows_hold_the_right_rows() -> None:
    series = np.arange(20, dtype=np.float32).reshape(10, 2)  # row r = [2r, 2r+1]
    w = make_windows(series, seq_len=3, horizon=2, n_targets=1, start=5, end=10)
    assert w.x.shape == (4, 3, 2) and w.y.shape == (4, 2, 1)
    assert w.x[0, :, 0].tolist() == [4, 6, 8]  # rows 2, 3, 4
    assert w.y[0, :, 0].tolist() == [10, 12]  # rows 5, 6
    assert w.y[-1, :, 0].tolist() == [16, 18]  # rows 8, 9: the last target row is end - 1


def test_window_cache_builds_once_per_length_and_splits_targets_chronologically() -> None:
    data = load_series(resolve_dataset("co2"))
    cache = WindowCache(data)
    first = cache.get(26)
    assert cache.get(26) is first
    train_end, val_end, test_end = data.borders
    horizon = data.spec.horizon
    assert len(first["train"].x) == train_end - 26 - horizon + 1
    assert len(first["val"].x) == val_end - train_end - horizon + 1
    assert len(first["test"].x) == test_end - val_end - horizon + 1
    # The first validation target is the first validation row.
    assert first["val"].y[0, 0, 0] == data.scaled[train_end, 0]


def test_scaler_is_fit_on_training_rows_only() -> None:
    data = load_series(resolve_dataset("co2"))
    train = data.scaled[: data.borders[0]]
    assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-3
    assert float(data.scaled[data.borders[1] :].mean()) > 1  # CO2 rises: test lies above train


def test_persistence_baseline_matches_a_direct_computation() -> None:
    data = load_series(resolve_dataset("co2"))
    _, val_end, test_end = data.borders
    h = data.spec.horizon
    y = data.scaled[:, 0]
    errs = [(y[s + k] - y[s - 1]) ** 2 for s in range(val_end, test_end - h + 1) for k in range(h)]
    assert data.baselines()["persistence_test"]["mse"] == pytest.approx(np.mean(errs), rel=1e-5)
