"""B3 overhead: the wall time of a trial run by the tuner against a bare
`model.fit` of the same model, data and epochs (no early stop, no pruning).

Tuner side: `tuner tune` with the fixed space (bench/spaces/fixed.py, co2), each
trial's wall time as Optuna records it (sampling, MLflow runs and per-epoch
metrics, callbacks, validation, test scoring and champion logging when a trial
becomes the best) and its training part (`train_s`). Bare side: a fresh process
builds the same model with the tuner's own builder and calls `model.fit` +
`model.predict` on the validation windows, timed the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, SPACES, environment, median, study_trials, tune

FULL = {"trials": 6, "epochs": 20}
QUICK = {"trials": 2, "epochs": 4}
PARAMS = {"seq_len": 52, "layers": 1, "units_0": 32, "learning_rate": 1e-3, "batch_size": 64}


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
                "new_best": "test_metrics" in t.user_attrs,
            }
            for t in study_trials(folder, "overhead")
        ]
    done = subprocess.run(
        [sys.executable, __file__, "--bare", str(plan["trials"]), epochs],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    bare = json.loads(done.stdout.strip().splitlines()[-1])
    bare_s = median(bare)
    trial_s = median([t["wall_s"] for t in trials])
    train_s = median([t["train_s"] for t in trials])
    return {
        **environment(),
        "workload": f"fixed LSTM(32), window 52, batch 64, {epochs} epochs, co2",
        "trials": trials,
        "bare_fit_s": bare,
        "median_trial_s": trial_s,
        "median_train_s": train_s,
        "median_bare_s": bare_s,
        "overhead": trial_s / bare_s - 1,
        "overhead_training_only": train_s / bare_s - 1,
        "target_met": trial_s / bare_s - 1 <= 0.05,
    }


def bare(repeats: int, epochs: int) -> list[float]:
    """Time `model.fit` of the fixed configuration, `repeats` times, in this process."""
    import keras

    from tuner._data import load_dataset, resolve_dataset
    from tuner._trial import compiled
    from tuner._windows import WindowCache

    data = load_dataset(resolve_dataset("co2"))
    windows = WindowCache(data).get(PARAMS["seq_len"])
    train, val = windows["train"], windows["val"]
    times = []
    for seed in range(repeats):
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model = compiled(PARAMS, data, train_size=len(train.x), epochs=epochs)
        model.fit(
            train.x,
            train.y,
            batch_size=64,
            epochs=epochs,
            validation_data=(val.x, val.y),
            verbose=0,
        )
        model.predict(val.x, batch_size=64, verbose=0)
        times.append(round(time.perf_counter() - start, 3))
        keras.backend.clear_session()
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare", nargs=2, type=int, metavar=("REPEATS", "EPOCHS"), required=True)
    args = parser.parse_args()
    print(json.dumps(bare(*args.bare)))
