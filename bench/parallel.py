"""Trials per hour with 1 and 2 local workers on one fixed configuration.

Every trial trains the same model (bench/spaces/fixed.py: window 52, LSTM(32),
5 epochs on co2, no pruning, no early stop), so the two runs do the same work.
Wall time includes worker start-up (each worker process imports its backend).
Writes bench/results/parallel.json. Run: `make bench-parallel`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
TRIALS, EPOCHS = 8, 5


def _run(workers: int, folder: Path) -> dict[str, object]:
    args = [
        sys.executable, "-m", "tuner", "tune",
        "--study", f"parallel-{workers}",
        "--space", str(HERE / "spaces" / "fixed.py"),
        "--trials", str(TRIALS), "--max-epochs", str(EPOCHS), "--patience", str(EPOCHS),
        "--pruner", "none", "--workers", str(workers),
        "--storage", f"sqlite:///{folder / 'optuna.db'}",
        "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--json",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=folder)
    wall = time.perf_counter() - start
    summary = json.loads(done.stdout)
    return {
        "workers": workers,
        "trials": summary["n_complete"],
        "wall_s": round(wall, 1),
        "trials_per_hour": round(summary["n_complete"] / wall * 3600),
    }


def main() -> None:
    rows = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            row = _run(workers, Path(tmp))
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "workload": f"{TRIALS} trials x {EPOCHS} epochs, fixed LSTM(32), window 52, co2",
        "results": rows,
        "speedup": round(rows[0]["wall_s"] / rows[1]["wall_s"], 2),  # type: ignore[operator]
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "parallel.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
