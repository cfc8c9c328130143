"""B3 overhead: the wall time of a trial run by the tuner against a bare
`model.fit` of the same model, data and epochs (no early stop, no pruning).

Tuner side: `tuner tune` with the fixed space (bench/spaces/fixed.py, co2), each
trial's wall time as Optuna records it (sampling, MLflow runs and per-epoch
metrics, callbacks, validation, test scoring and champion logging when a trial
becomes the best) and its training part (`train_s`). Bare side: a fresh process
on the same backend builds the same model with the tuner's own builder and
calls `model.fit` + `model.predict` on the validation windows, timed the same
way: once with NumPy arrays (a hand-written loop: the target compares against
it) and once with the tuner's feed (what is left is the tuner's bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, SPACES, environment, median, study_trials, tune

from tuner.devices import default_backend

FULL = {"trials": 8, "epochs": 20}
QUICK = {"trials": 2, "epochs": 4}
PARAMS = {"seq_len": 52, "layers": 1, "units_0": 32, "learning_rate": 1e-3, "batch_size": 64}
FEEDS = ("numpy", "tuner")


def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    epochs = str(plan["epochs"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tune(
            folder, "overhead", "--space", str(SPACES / "fixed.py"),
            "--trials", str(plan["trials"]),
            "--max-epochs", epochs, "--patience", epochs, "--pruner", "none",
        )  # fmt: skip
        trials = [
            {
                "number": t.number,
                "wall_s": t.duration.total_seconds(),
                "train_s": t.user_attrs["train_s"],
                "new_best": "model_uri" in t.user_attrs,
            }
            for t in study_trials(folder, "overhead")
        ]
    # The bare fits run on the backend the tuner's trials ran on.
    backend = os.environ.get("KERAS_BACKEND") or default_backend(gpu=None)
    done = subprocess.run(
        [sys.executable, __file__, "--bare", str(plan["trials"]), epochs],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
    )  # fmt: skip
    bare: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    bare_s = median(bare["numpy"])
    walls = [t["wall_s"] for t in trials]
    trial_s, train_s = median(walls), median([t["train_s"] for t in trials])
    return {
        **environment(),
        "workload": f"fixed LSTM(32), window 52, batch 64, {epochs} epochs, co2",
        "backend": backend,
        "trials": trials,
        "bare_fit_s": bare["numpy"],
        "bare_tuner_feed_s": bare["tuner"],
        "median_trial_s": trial_s,
        "mean_trial_s": sum(walls) / len(walls),
        "median_train_s": train_s,
        "median_bare_s": bare_s,
        "median_bare_tuner_feed_s": median(bare["tuner"]),
        "overhead": trial_s / bare_s - 1,
        "overhead_mean_trial": sum(walls) / len(walls) / bare_s - 1,
        "overhead_over_tuner_feed": trial_s / median(bare["tuner"]) - 1,
        "target_met": trial_s / bare_s - 1 <= 0.05,
    }


def bare(repeats: int, epochs: int) -> dict[str, list[float]]:
    """Time `model.fit` + a validation predict of the fixed configuration, `repeats`
    times per feed, the feeds taking turns, in this process. Feeds: NumPy arrays as
    a hand-written loop passes them, and the tuner's (full shuffled batches,
    validation as one batch, padded predictions) without its bookkeeping."""
    import keras

    from tuner.data.catalog import load_dataset, resolve_dataset
    from tuner.data.windows import WindowCache
    from tuner.model.batches import TrainBatches, predict_windows
    from tuner.model.train import compiled

    data = load_dataset(resolve_dataset("co2"))
    windows = WindowCache(data).get(PARAMS["seq_len"])
    train, val = windows["train"], windows["val"]
    times: dict[str, list[float]] = {feed: [] for feed in FEEDS}
    for seed in range(repeats):
        for feed in FEEDS:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            model = compiled(PARAMS, data, train=train, epochs=epochs)
            if feed == "numpy":
                model.fit(
                    train.x, train.y, batch_size=64, epochs=epochs,
                    validation_data=(val.x, val.y), verbose=0,
                )  # fmt: skip
                model.predict(val.x, batch_size=64, verbose=0)
            else:
                model.fit(
                    TrainBatches(train, 64, seed=seed), epochs=epochs,
                    validation_data=(val.x, val.y), validation_batch_size=len(val.x), verbose=0,
                )  # fmt: skip
                predict_windows(model, val, batch_size=64)
            times[feed].append(round(time.perf_counter() - start, 3))
            keras.backend.clear_session()
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare", nargs=2, type=int, metavar=("REPEATS", "EPOCHS"), required=True)
    args = parser.parse_args()
    print(json.dumps(bare(*args.bare)))
