"""Batches for training, validation and prediction, gathered from (possibly
strided) window views with as few shapes as possible: under JAX each new batch
shape compiles the step anew. Training batches are all full (the short remainder
is left out, a different one each pass), validation runs as one batch where it
fits, and predictions pad their last batch.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from tuner.data.spec import Windows
from tuner.model.budget import batches_per_pass, passes_per_round


def round_passes(split: Windows, batch_size: int) -> int:
    """`passes_per_round` for a split's windows."""
    targets = int(np.prod(split.y.shape[1:], dtype=np.int64))
    return passes_per_round(len(split.x), batch_size, targets=targets)


def predict_windows(model: keras.Model, split: Windows, *, batch_size: int) -> np.ndarray:
    """The model's outputs for one split's windows, predicted in full batches only:
    the last, short batch is filled up with the split's first windows and their
    outputs dropped, so validation, test and figures share one compiled step."""
    n = len(split.x)
    full = n - n % batch_size
    parts = []
    if full:
        bulk = Windows(x=split.x[:full], y=split.y[:full])
        parts.append(model.predict(Batches(bulk, batch_size, targets=False), verbose=0))
    if full < n:
        rows = np.arange(full, full + batch_size) % n
        tail = model.predict(split.x[rows], batch_size=batch_size, verbose=0)
        parts.append(np.asarray(tail)[: n - full])
    return np.concatenate([np.asarray(p) for p in parts])


class Batches(keras.utils.PyDataset):
    """Batches gathered from (possibly strided) window views, in order: only one
    batch is ever copied."""

    def __init__(self, split: Windows, batch_size: int, *, targets: bool = True) -> None:
        super().__init__()
        self._split = split
        self._batch_size = batch_size
        self._targets = targets
        self._order = np.arange(len(split.x))

    def __len__(self) -> int:
        return math.ceil(len(self._order) / self._batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        return self._gather(self._order[i * self._batch_size : (i + 1) * self._batch_size])

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = np.sort(rows)
        x = self._split.x[rows]
        if not self._targets:
            return (x,)
        return x, as_targets(self._split.y[rows])


def as_targets(y: np.ndarray) -> np.ndarray:
    """Class labels (n,) as (n, 1): a sigmoid output's rank, which Keras' binary
    cross-entropy (loss and metric) needs (the sparse losses accept both)."""
    return y[:, None] if y.ndim == 1 else y


class TrainBatches(Batches):
    """Shuffled full training batches, `passes` shuffled passes to an epoch (a round),
    reshuffled every pass. The windows left over (fewer than a batch) differ from
    pass to pass, so every window is seen; a split smaller than one batch is a
    single, short batch."""

    def __init__(self, split: Windows, batch_size: int, *, seed: int, passes: int = 1) -> None:
        super().__init__(split, batch_size)
        self._rng = np.random.default_rng(seed)
        self._passes = passes
        self._orders: list[np.ndarray] = []
        self.on_epoch_end()

    count = staticmethod(batches_per_pass)

    @property
    def split(self) -> Windows:
        return self._split

    def __len__(self) -> int:
        return self._passes * self.count(len(self._order), self._batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        per_pass = self.count(len(self._order), self._batch_size)
        start = (i % per_pass) * self._batch_size
        return self._gather(self._orders[i // per_pass][start : start + self._batch_size])

    def on_epoch_end(self) -> None:
        self._orders = [self._rng.permutation(len(self._order)) for _ in range(self._passes)]


# Validation as a single batch when its activations stay small (about 128 MB per
# LSTM(64) layer at this many window steps); one compiled step instead of two.
_ONE_BATCH_STEPS = 2**19


def validation_batch_size(split: Windows, batch_size: int) -> int:
    n = len(split.x)
    return n if n * split.x.shape[1] <= _ONE_BATCH_STEPS else batch_size
