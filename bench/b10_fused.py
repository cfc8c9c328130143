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

Then the study: `make tune`'s study (co2, the default space, one worker) and a
classification set of B9's panel (JapaneseVowels: 270 training sequences, no
cross-validation by default, so its sampled trials fuse) for a fixed wall time
(`--timeout`, more trials asked than fit), unfused (`--fuse 1`, the default) and
fused (`--fuse K`, `--fuse auto`): trials finished per hour, the best validation
value at the end, and the best among the first N trials finished (N: the unfused
study's count), every trial's sampling, MLflow records and champion included. One
run each: the best value after a few minutes moves between runs.
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
from panel import classification_npz

from tuner.study.records import FUSED_GROUP

MODELS = {
    "lstm16-w48-b32": {"units": (16,), "window": 48, "batch": 32},
    "lstm64x2-w168-b64 (B4)": {"units": (64, 64), "window": 168, "batch": 64},
}
GROUPS = (1, 2, 4, 8, 16)
QUICK_GROUPS = (1, 4)  # make bench-quick
STEPS = 30
BLOCKS = 3
# The studies: set -> the --fuse values run on it (co2 is make tune's study).
STUDIES = {
    "co2": ("1", "2", "4", "8", "16", "auto"),
    "JapaneseVowels": ("1", "2", "auto"),
}
QUICK_STUDIES = {"co2": ("1", "auto")}
STUDY_SECONDS = 300  # each study's --timeout
QUICK_STUDY_SECONDS = 60
METRIC = {"co2": "mse", "JapaneseVowels": "accuracy"}  # the test metric shown


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


def _dataset(name: str) -> tuple[str, ...]:
    if name == "co2":
        return ("--dataset", "co2")
    path, _ = classification_npz(name)
    return ("--dataset", str(path))


def _studies(studies: dict[str, tuple[str, ...]], seconds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, sizes in studies.items():
        rows: dict[str, Any] = {}
        for k in sizes:
            rows[k] = _study(name, k, seconds)
            print(f"B10 study {name} --fuse {k}: {rows[k]}", file=sys.stderr)
        n = rows[sizes[0]]["finished"]  # the unfused study's count
        for row in rows.values():
            row["n"] = n
            row["best_value_first_n"] = _best_of_first(row.pop("values"), n)
        out[name] = rows
    return out


def _study(name: str, k: str, seconds: int) -> dict[str, Any]:
    metric = METRIC[name]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        args = (*_dataset(name), "--timeout", str(seconds), "--trials", "1000", "--fuse", k)
        summary = tune(folder, name, *args, env={"KERAS_BACKEND": "jax"})
        wall = time.perf_counter() - started
        trials = study_trials(folder, name)
    finished = sorted(
        (t for t in trials if t.state.name in ("COMPLETE", "PRUNED")), key=lambda t: t.number
    )
    values = [t.value if t.state.name == "COMPLETE" else None for t in finished]
    return {
        "wall_s": round(wall, 1),
        "finished": len(finished),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "trials_per_hour": round(len(finished) * 3600 / wall, 1),
        "objective": summary["objective"],
        "best_value": min((v for v in values if v is not None), default=None),
        "values": values,  # in trial order, None where pruned
        "metric": metric,
        "best_val": summary["best_val"][metric],
        "best_test": summary["best_test"][metric],
        "best_trial": summary["best_trial"],
        "groups": len({t.user_attrs.get(FUSED_GROUP) for t in trials} - {None}),
        "fused_trials": (summary.get("fused") or {}).get("trials", 0),
        "fuse_measured": summary.get("fuse_measured"),
    }


def _best_of_first(values: list[float | None], n: int) -> float | None:
    """The best objective (lowest) among the first `n` trials finished."""
    kept = [v for v in values[:n] if v is not None]
    return min(kept) if kept else None


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
        "studies": _studies(QUICK_STUDIES if quick else STUDIES, seconds),
    }


if __name__ == "__main__":
    if "--measure" in sys.argv:
        print(json.dumps(_measure(QUICK_GROUPS if "--quick" in sys.argv else GROUPS)))
    else:
        print(json.dumps(run(False), indent=2))
