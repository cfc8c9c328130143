"""B5 memory: resident memory over 50 sequential trials of one study.

`tuner tune` with the fixed space (bench/spaces/fixed.py, co2, no pruning) and
one worker. Two readings: the RSS the worker records at the end of each trial
(`rss_mb`, after `clear_session` and garbage collection), and the RSS of the
whole process tree (the `tuner` process and its worker), sampled every 0.2 s.
Growth after trial 5 = the highest reading from trial 6 on over the reading at
trial 5, minus one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import SPACES, environment, storage, study_trials

from tuner.devices import default_backend
from tuner.engine.runner import TRIALS_PER_PROCESS

FULL = {"trials": 50, "epochs": 2}
QUICK = {"trials": 12, "epochs": 1}
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    epochs = str(plan["epochs"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        command = [
            sys.executable, "-m", "tuner", "tune", "--study", "memory",
            "--space", str(SPACES / "fixed.py"), "--trials", str(plan["trials"]),
            "--max-epochs", epochs, "--patience", epochs, "--pruner", "none",
            "--storage", storage(folder), "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        samples: list[list[float]] = []
        sampler = threading.Thread(target=_sample, args=(process, samples), daemon=True)
        sampler.start()
        _, stderr = process.communicate()
        sampler.join()
        if process.returncode != 0:
            raise RuntimeError(f"B5 tuner run failed ({process.returncode}):\n{stderr[-3000:]}")
        rss = [float(t.user_attrs["rss_mb"]) for t in study_trials(folder, "memory")]
    backend = os.environ.get("KERAS_BACKEND") or default_backend(gpu=None)
    worker_growth = max(rss[5:]) / rss[4] - 1
    print(f"B5 worker RSS after trial 5: {rss[4]:.0f} MB, highest later: {max(rss[5:]):.0f} MB")
    return {
        **environment(),
        "workload": f"{plan['trials']} trials x {epochs} epochs, fixed LSTM(32), window 52, co2",
        "backend": backend,
        "trials_per_process": TRIALS_PER_PROCESS.get(backend, 10),
        "worker_rss_mb": rss,
        "tree_rss_mb": samples,  # [seconds since start, MB]
        "tree_peak_mb": max(mb for _, mb in samples),
        "growth_after_trial_5": worker_growth,
        "target_met": worker_growth <= 0.10,
    }


def _sample(process: subprocess.Popen[str], samples: list[list[float]]) -> None:
    start = time.perf_counter()
    while process.poll() is None:
        samples.append([round(time.perf_counter() - start, 1), round(_tree_rss(process.pid), 1)])
        time.sleep(0.2)


def _tree_rss(root: int) -> float:
    """RSS in MB of `root` and every descendant (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    total = 0.0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE_MB
        except OSError:
            continue
    return total
