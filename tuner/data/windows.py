"""Sliding windows over a split, built once per sequence length.

Windows are strided views of the scaled series (no Python loop per sample).
Small ones are copied once into contiguous arrays, the fastest way to feed
Keras; large ones stay views and are gathered batch by batch
(`tuner.model.train.TrainBatches`), so the series is never copied per window.
Trials with the same sequence length share them through `WindowCache`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tuner.data.spec import Dataset, Windows
from tuner.errors import InputError

SPLITS = ("train", "val", "test")
CONTIGUOUS_LIMIT_BYTES = 512 * 2**20  # larger windows of one split stay strided views


def compact(view: np.ndarray) -> np.ndarray:
    """A contiguous copy of a window view if it is small enough, else the view itself."""
    return np.ascontiguousarray(view) if view.nbytes <= CONTIGUOUS_LIMIT_BYTES else view


def make_windows(
    series: np.ndarray, *, seq_len: int, horizon: int, n_targets: int, start: int, end: int
) -> Windows:
    """Windows whose targets lie in rows [start, end); inputs may reach back before start.
    An empty range (a cross-validation fold's test part) gives no windows."""
    if end - start < horizon:
        features = series.shape[1]
        return Windows(
            x=np.empty((0, seq_len, features), series.dtype),
            y=np.empty((0, horizon, n_targets), series.dtype),
        )
    lo = start - seq_len
    block = series[lo:end]
    view = sliding_window_view(block, seq_len + horizon, axis=0).transpose(0, 2, 1)
    return Windows(
        x=compact(view[:, :seq_len, :]),
        y=compact(view[:, seq_len:, :n_targets]),
    )


class WindowCache:
    """Windows of every split per sequence length, built on first use."""

    def __init__(self, data: Dataset) -> None:
        self._data = data
        self._cache: dict[int, dict[str, Windows]] = {}

    def get(self, seq_len: int) -> dict[str, Windows]:
        if seq_len not in self._cache:
            self._cache[seq_len] = self._data.windows(seq_len)
        return self._cache[seq_len]


def check_seq_len(seq_len: int, data: Dataset) -> None:
    """The training split must supply at least one window of `seq_len` steps."""
    info = data.info
    if 1 <= seq_len <= info.max_seq_len:
        return
    beyond = info.kind.window_limit(info)
    raise InputError(
        f"search space: seq_len={seq_len} cannot be supplied by dataset "
        f"'{data.spec.name}': the training split has {info.n_train} rows, so seq_len"
        f"{beyond} must be at most {info.n_train}; use seq_len <= {info.max_seq_len}."
    )
