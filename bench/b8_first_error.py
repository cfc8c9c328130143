"""B8 time to the first error line: a bad option and a bad data file, as a user
types them, from process start to the one line on stderr (exit code 2).

Each case runs `tuner tune ...` as a fresh process (the console script of this
environment) several times; the median and the slowest are reported. Targets: a
bad option within 2 s, a bad file within 10 s on this machine (the data is read and
checked before the training stack loads).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import environment

TARGET_S = {"bad option": 2.0, "bad file": 10.0}


def _cases(folder: Path) -> dict[str, list[str]]:
    bad = folder / "prices.csv"
    bad.write_text("date,price\n2024-01-01,1.0\n2024-01-02,2.0\n")
    return {
        "bad option": ["--max-epochs", "0"],
        "bad file": ["--dataset", str(bad), "--target", "volume"],
    }


def _time_one(args: list[str], folder: Path) -> tuple[float, int, str]:
    tuner = str(Path(sys.executable).with_name("tuner"))
    start = time.perf_counter()
    proc = subprocess.run(
        [tuner, "tune", *args], capture_output=True, text=True, cwd=folder, timeout=300
    )
    took = time.perf_counter() - start
    return took, proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr else ""


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, args in _cases(folder).items():
            timings, codes, line = [], set(), ""
            for _ in range(repeats):
                took, code, line = _time_one(args, folder)
                timings.append(took)
                codes.add(code)
            shown = (a if "/" not in a else Path(a).name for a in args)
            row = {
                "case": name,
                "command": "tuner tune " + " ".join(shown),
                "median_s": round(statistics.median(timings), 2),
                "max_s": round(max(timings), 2),
                "exit_codes": sorted(codes),
                "line": line,
                "target_s": TARGET_S[name],
                "target_met": max(timings) <= TARGET_S[name] and codes == {2},
            }
            print(f"B8 {name}: median {row['median_s']} s, max {row['max_s']} s: {line}")
            rows.append(row)
    return {**environment(), "repeats": repeats, "results": rows}
