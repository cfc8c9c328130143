"""B6 parallel: trials per hour with 1 and 2 local workers (1, 2 and 4 sharing the GPU
on a GPU host) on one fixed configuration.

Every trial trains the same model (bench/spaces/fixed.py: window 52, LSTM(32),
co2, no pruning, no early stop), so the two runs do the same work. Wall time
includes worker start-up (each worker process imports its backend).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from common import SPACES, environment, first_gpu, tune

FULL = {"trials": 8, "epochs": 5}
QUICK = {"trials": 4, "epochs": 2}


def _one(workers: int, folder: Path, plan: dict[str, int]) -> dict[str, Any]:
    epochs = str(plan["epochs"])
    start = time.perf_counter()
    summary = tune(
        folder, f"parallel-{workers}", "--space", str(SPACES / "fixed.py"),
        "--trials", str(plan["trials"]), "--max-epochs", epochs, "--patience", epochs,
        "--pruner", "none", "--workers", str(workers),
    )  # fmt: skip
    wall = time.perf_counter() - start
    return {
        "workers": workers,
        "trials": summary["n_complete"],
        "wall_s": round(wall, 1),
        "trials_per_hour": round(summary["n_complete"] / wall * 3600),
    }


def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    rows = []
    # A GPU host has the cores for more processes sharing its GPU (--workers N puts
    # them all on it).
    for workers in (1, 2, 4) if first_gpu() else (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            row = _one(workers, Path(tmp), plan)
        print(f"B6 {workers} worker(s): {row['trials_per_hour']} trials/hour")
        rows.append(row)
    return {
        **environment(),
        "workload": f"{plan['trials']} trials x {plan['epochs']} epochs, "
        "fixed LSTM(32), window 52, co2",
        "results": rows,
        "speedup": round(rows[0]["wall_s"] / rows[-1]["wall_s"], 2),
    }
