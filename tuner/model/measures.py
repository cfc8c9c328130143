"""What a trained model costs where it is served: latency, parameters, file size.

The values a study can minimise beside its validation objective, or bound
(`--objectives`, `--constraint`). None of them depends on the weights, so a
cross-validated trial is measured on its configuration built afresh.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

from tuner.objectives import MEASURES
from tuner.paths import MODEL_FILE

LATENCY_CALLS = 30  # timed calls, after LATENCY_WARMUP untimed ones (compilation)
LATENCY_WARMUP = 3
SERVING_BATCH = 32  # batch_latency_ms: a request of this many windows


def measure(model: keras.Model, x: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """`names` (MEASURES) of `model`, given model inputs `x`: latency_ms, the median
    of LATENCY_CALLS batch-1 predictions on this process's device; batch_latency_ms,
    the same for a batch of SERVING_BATCH windows (`x`'s first ones, repeated where it
    has fewer); params, the weights counted; size_kb, the saved `.keras` file."""
    out: dict[str, float] = {}
    for name in names:
        out[name] = _MEASURES[name](model, x)
    return out


def _median_ms(model: keras.Model, batch: np.ndarray) -> float:
    for _ in range(LATENCY_WARMUP):
        model.predict_on_batch(batch)
    times = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        np.asarray(model.predict_on_batch(batch))  # waits for the device
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 4)


def _latency_ms(model: keras.Model, x: np.ndarray) -> float:
    return _median_ms(model, x[:1])


def _batch_latency_ms(model: keras.Model, x: np.ndarray) -> float:
    rows = np.arange(SERVING_BATCH) % len(x)
    return _median_ms(model, x[rows])


def _params(model: keras.Model, x: np.ndarray) -> float:
    return float(model.count_params())


def _size_kb(model: keras.Model, x: np.ndarray) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        model.save(path)
        return round(path.stat().st_size / 1024, 2)


_MEASURES = {
    "latency_ms": _latency_ms,
    "batch_latency_ms": _batch_latency_ms,
    "params": _params,
    "size_kb": _size_kb,
}
assert tuple(_MEASURES) == MEASURES
