"""B4 training speed: per-epoch time of one fixed model per Keras backend and
input pipeline.

The model: 2-layer LSTM(64) -> Dense(1) on 10,000 windows of length 48 (a noisy
sine), Adam, batch 64, 5 epochs. Pipelines: NumPy arrays handed to `model.fit` (what
a hand-written loop does) and `TrainBatches` (the tuner's: shuffled full
batches gathered from window views). Each backend runs in its own process; the
steady epoch time is the mean of the epochs after the first (which includes
compilation); the default counts as the fastest when no path is faster at the
recorded resolution of 10 ms. "Same results": the final training loss within 5% of the
TensorFlow/NumPy run's (on a host without TensorFlow, the first backend's NumPy run;
each backend draws its own initial weights, so no two runs agree to the digit). On a
GPU host the runs train on its first GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from typing import Any

from common import ROOT, environment, first_gpu

from tuner.devices import default_backend

BACKENDS = ("tensorflow", "jax", "torch")
REFERENCE = ("tensorflow", "numpy")
SAME_LOSS = 0.05  # relative difference of final losses that counts as the same result
SEQ_LEN, EPOCHS, BATCH = 48, 5, 64
FULL, QUICK = 10_000, 2_000  # windows


def _measure(pipeline: str, n_windows: int) -> dict[str, object]:
    import keras
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    from tuner.data.spec import Windows
    from tuner.model.batches import TrainBatches

    keras.utils.set_random_seed(0)
    t = np.arange(n_windows + SEQ_LEN + 1, dtype=np.float32)
    series = (np.sin(t / 8) + 0.1 * np.random.default_rng(0).standard_normal(len(t)))[:, None]
    view = sliding_window_view(series.astype(np.float32), SEQ_LEN + 1, axis=0).transpose(0, 2, 1)
    windows = Windows(x=view[:n_windows, :SEQ_LEN], y=view[:n_windows, SEQ_LEN, :])
    model = keras.Sequential(
        [
            keras.Input((SEQ_LEN, 1)),
            keras.layers.LSTM(64, return_sequences=True),
            keras.layers.LSTM(64),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            times.append(round(time.perf_counter() - self.start, 2))

    if pipeline == "numpy":
        x, y = np.ascontiguousarray(windows.x), np.ascontiguousarray(windows.y)
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, callbacks=[Clock()], verbose=0)
    else:
        feed = TrainBatches(windows, BATCH, seed=0)
        history = model.fit(feed, epochs=EPOCHS, callbacks=[Clock()], verbose=0)
    return {
        "backend": keras.backend.backend(),
        "pipeline": pipeline,
        "epoch_s": times,
        "steady_epoch_s": round(sum(times[1:]) / len(times[1:]), 2),
        "final_loss": round(float(history.history["loss"][-1]), 5),
    }


def _run_backend(backend: str, pipeline: str, n_windows: int) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, __file__, "--one", pipeline, str(n_windows)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool) -> dict[str, Any]:
    n_windows = QUICK if quick else FULL
    installed = [b for b in BACKENDS if importlib.util.find_spec(b)]
    rows = []
    for backend in installed:
        for pipeline in ("numpy", "train_batches"):
            row = _run_backend(backend, pipeline, n_windows)
            print(f"B4 {backend} {pipeline}: {row['steady_epoch_s']} s per epoch")
            rows.append(row)
    # TensorFlow/NumPy where TensorFlow is installed, else the first backend's NumPy run.
    reference = next((r for r in rows if (r["backend"], r["pipeline"]) == REFERENCE), rows[0])
    for row in rows:
        row["same_result"] = abs(row["final_loss"] / reference["final_loss"] - 1) <= SAME_LOSS
    default_path = (default_backend(gpu=first_gpu()), "train_batches")
    default = next(r for r in rows if (r["backend"], r["pipeline"]) == default_path)
    # A tie at the recorded resolution (10 ms) goes to the default.
    fastest = min(
        (r for r in rows if r["same_result"]),
        key=lambda r: (r["steady_epoch_s"], r is not default),
    )
    return {
        **environment(),
        "model": f"LSTM(64) x 2 -> Dense(1); {n_windows} windows x {SEQ_LEN} steps; batch {BATCH}",
        "results": rows,
        "reference": [reference["backend"], reference["pipeline"]],
        "default": list(default_path),
        "fastest": [fastest["backend"], fastest["pipeline"]],
        "default_over_fastest": default["steady_epoch_s"] / fastest["steady_epoch_s"],
        "target_met": default is fastest,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, required=True, metavar=("PIPELINE", "WINDOWS"))
    args = parser.parse_args()
    print(json.dumps(_measure(args.one[0], int(args.one[1]))))
