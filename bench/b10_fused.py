"""B10 (first part) fused trials: optimizer steps per second of K members of one
structure trained as one vmapped, jitted program (tuner/model/fused.py), against
the same members trained one after the other.

Two models: the issue's quick check (LSTM(16), window 48, batch 32, one feature,
a regression head) and B4's (LSTM(64) x 2, window 168, batch 64). For each K in
1, 2, 4, 8, 16: member-steps per second of the fused group (K members' steps per
second of wall time, after compilation), of one member alone in the same code
(K = 1: what K members cost one after the other), and of Keras' own `fit` on one
member (the path a trial takes today). Each figure is the median of three timed
blocks of STEPS steps. Runs under KERAS_BACKEND=jax in a process of its own.

Then the study: `make tune`'s study (co2, the default space, one worker) for a
fixed wall time (`--timeout`, more trials asked than fit), unfused (`--fuse 1`,
the default) and fused (`--fuse K`): trials finished per hour and the best
validation MSE at the end, every trial's sampling, MLflow records and champion
included. One run each: the best value after a few minutes moves between runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, environment, study_trials, tune

from tuner.study.records import FUSED_GROUP

MODELS = {
    "lstm16-w48-b32": {"units": (16,), "window": 48, "batch": 32},
    "lstm64x2-w168-b64 (B4)": {"units": (64, 64), "window": 168, "batch": 64},
}
GROUPS = (1, 2, 4, 8, 16)
QUICK_GROUPS = (1, 4)  # make bench-quick
STEPS = 30
BLOCKS = 3
STUDY_GROUPS = (1, 2, 4, 8)
QUICK_STUDY_GROUPS = (1, 4)
STUDY_SECONDS = 300  # each study's --timeout
QUICK_STUDY_SECONDS = 60


def _measure(groups: tuple[int, ...]) -> dict[str, Any]:
    import keras
    import numpy as np

    from tuner.model.fused import FusedGroup

    out: dict[str, Any] = {}
    for name, shape in MODELS.items():
        units, window, batch = shape["units"], int(shape["window"]), int(shape["batch"])

        def build(units: tuple[int, ...] = units, window: int = window) -> keras.Model:
            inputs = keras.Input((window, 1))
            x = inputs
            for i, width in enumerate(units):
                x = keras.layers.LSTM(width, return_sequences=i < len(units) - 1)(x)
            return keras.Model(inputs, keras.layers.Dense(1)(x))

        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch, window, 1)).astype("float32")
        y = rng.normal(size=(batch, 1)).astype("float32")
        rows = []
        for k in groups:
            group = FusedGroup(
                build,
                lambda: keras.optimizers.Adam(1e-3),
                keras.losses.mean_squared_error,
                seeds=list(range(k)),
                learning_rates=list(np.geomspace(1e-4, 1e-2, k)),
            )
            np.asarray(group.train_step(x, y))  # compiles
            seconds = []
            for _ in range(BLOCKS):
                start = time.perf_counter()
                for _ in range(STEPS):
                    loss = group.train_step(x, y)
                np.asarray(loss)  # waits for the block's last step (steps run queued)
                seconds.append(time.perf_counter() - start)
            per_s = k * STEPS / statistics.median(seconds)
            rows.append({"k": k, "member_steps_per_s": round(per_s, 1)})
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        xs, ys = np.repeat(x, STEPS, axis=0), np.repeat(y, STEPS, axis=0)
        model.fit(xs[:batch], ys[:batch], batch_size=batch, epochs=1, verbose=0)  # compiles
        fit_seconds = []
        for _ in range(BLOCKS):
            start = time.perf_counter()
            model.fit(xs, ys, batch_size=batch, epochs=1, verbose=0, shuffle=False)
            fit_seconds.append(time.perf_counter() - start)
        alone = rows[0]["member_steps_per_s"]
        for row in rows:
            row["speedup_vs_one_after_another"] = round(row["member_steps_per_s"] / alone, 2)
        out[name] = {
            "rows": rows,
            "keras_fit_steps_per_s": round(STEPS / statistics.median(fit_seconds), 1),
        }
    return out


def _studies(groups: tuple[int, ...], seconds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in groups:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            started = time.perf_counter()
            args = ("--timeout", str(seconds), "--trials", "1000", "--fuse", str(k))
            summary = tune(folder, "co2", *args, env={"KERAS_BACKEND": "jax"})
            wall = time.perf_counter() - started
            trials = study_trials(folder, "co2")
        finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        out[str(k)] = {
            "wall_s": round(wall, 1),
            "finished": len(finished),
            "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "trials_per_hour": round(len(finished) * 3600 / wall, 1),
            "best_val_mse": summary["best_val"]["mse"],
            "best_test_mse": summary["best_test"]["mse"],
            "best_trial": summary["best_trial"],
            "groups": len({t.user_attrs.get(FUSED_GROUP) for t in trials} - {None}),
        }
        print(f"B10 study --fuse {k}: {out[str(k)]}", file=sys.stderr)
    return out


def run(quick: bool) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--measure", *(["--quick"] if quick else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"B10 measurement failed:\n{done.stderr[-3000:]}")
    seconds = QUICK_STUDY_SECONDS if quick else STUDY_SECONDS
    return {
        **environment(),
        "backend": "jax",
        "steps": STEPS,
        "blocks": BLOCKS,
        "models": json.loads(done.stdout.strip().splitlines()[-1]),
        "study_seconds": seconds,
        "studies": _studies(QUICK_STUDY_GROUPS if quick else STUDY_GROUPS, seconds),
    }


if __name__ == "__main__":
    if "--measure" in sys.argv:
        print(json.dumps(_measure(QUICK_GROUPS if "--quick" in sys.argv else GROUPS)))
    else:
        print(json.dumps(run(False), indent=2))
