"""Sliding windows over a split, built once per sequence length.

Windows are strided views of the scaled series made contiguous once; trials
with the same sequence length share them through `WindowCache`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tuner._data import SeriesData
from tuner._errors import InputError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Windows:
    """Inputs (n, seq_len, features) and targets (n, horizon, n_targets) of one split."""

    x: np.ndarray
    y: np.ndarray


def make_windows(
    series: np.ndarray, *, seq_len: int, horizon: int, n_targets: int, start: int, end: int
) -> Windows:
    """Windows whose targets lie in rows [start, end); inputs may reach back before start."""
    lo = start - seq_len
    block = series[lo:end]
    view = sliding_window_view(block, seq_len + horizon, axis=0).transpose(0, 2, 1)
    return Windows(
        x=np.ascontiguousarray(view[:, :seq_len, :]),
        y=np.ascontiguousarray(view[:, seq_len:, :n_targets]),
    )


def split_range(data: SeriesData, split: str, seq_len: int) -> tuple[int, int]:
    """Rows whose values are targets for `split` (train targets start after one window)."""
    train_end, val_end, test_end = data.borders
    return {
        "train": (seq_len, train_end),
        "val": (train_end, val_end),
        "test": (val_end, test_end),
    }[split]


class WindowCache:
    """Windows of every split per sequence length, built on first use."""

    def __init__(self, data: SeriesData) -> None:
        self._data = data
        self._cache: dict[int, dict[str, Windows]] = {}

    def get(self, seq_len: int) -> dict[str, Windows]:
        if seq_len not in self._cache:
            self._cache[seq_len] = self._build(seq_len)
        return self._cache[seq_len]

    def _build(self, seq_len: int) -> dict[str, Windows]:
        data, horizon = self._data, self._data.spec.horizon
        check_seq_len(seq_len, data)
        out = {}
        for split in SPLITS:
            start, end = split_range(data, split, seq_len)
            out[split] = make_windows(
                data.scaled,
                seq_len=seq_len,
                horizon=horizon,
                n_targets=data.n_targets,
                start=start,
                end=end,
            )
        return out


def check_seq_len(seq_len: int, data: SeriesData) -> None:
    """The training split must supply at least one window of seq_len + horizon rows."""
    limit = data.info.max_seq_len
    if seq_len < 1 or seq_len > limit:
        raise InputError(
            f"search space: seq_len={seq_len} cannot be supplied by dataset "
            f"'{data.spec.name}': the training split has {data.borders[0]} rows, so seq_len + "
            f"horizon ({data.spec.horizon}) must be at most {data.borders[0]}; "
            f"use seq_len <= {limit}."
        )
