"""Windowing benchmark: load and window a 1,000,000-row series at sequence length 336.

Writes bench/results/windowing.json. Run: `make bench-windowing`.
The series is synthetic (a daily and a weekly cycle plus noise) and written to
bench/tmp/ first; the figures are the tuner's own loading and windowing.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series

ROWS, SEQ_LEN, HORIZON = 1_000_000, 336, 24
HERE = Path(__file__).parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_series(path: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(ROWS)
    load = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168)
    pd.DataFrame(
        {
            "date": pd.date_range("2000-01-01", periods=ROWS, freq="h"),
            "load": load + 0.1 * rng.standard_normal(ROWS),
            "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(ROWS),
            "price": rng.standard_normal(ROWS),
        }
    ).to_csv(path, index=False)


def main() -> None:
    path = HERE / "tmp" / "series_1m.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        _write_series(path)
    spec = resolve_dataset(
        str(path), target=("load",), covariates=("temp", "price"), time_col="date", horizon=HORIZON
    )
    before = _peak_mb()
    start = time.perf_counter()
    data = load_series(spec)
    load_s = time.perf_counter() - start
    after_load = _peak_mb()
    start = time.perf_counter()
    windows = data.windows(SEQ_LEN)
    window_s = time.perf_counter() - start
    after_windows = _peak_mb()
    train = windows["train"]
    start = time.perf_counter()
    batch = train.x[np.sort(np.random.default_rng(0).choice(len(train.x), 256, replace=False))]
    batch_ms = (time.perf_counter() - start) * 1000
    series_mb = data.scaled.nbytes / 2**20
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}",
        "rows": ROWS,
        "features": len(data.columns),
        "seq_len": SEQ_LEN,
        "horizon": HORIZON,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "load_s": round(load_s, 2),
        "windowing_s": round(window_s, 4),
        "series_float32_mb": round(series_mb, 1),
        "peak_rss_growth_load_mb": round(after_load - before, 1),
        "peak_rss_growth_windowing_mb": round(after_windows - after_load, 1),
        "windows_train": len(train.x),
        "windows_are_views": bool(np.shares_memory(train.x, data.scaled)),
        "windows_if_copied_mb": round(train.x.size * train.x.itemsize / 2**20, 1),
        "batch_gather_ms": round(batch_ms, 2),
        "batch_shape": list(batch.shape),
    }
    out = HERE / "results" / "windowing.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
