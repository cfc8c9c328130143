"""What every benchmark shares: running `tuner tune` in a scratch folder, reading
its study back, and describing the machine and package versions."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from tuner.devices import default_backend, gpu_names, visible_gpus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPACES = HERE / "spaces"
ETTH1 = (ROOT / "../shared/datasets/ETTh1.csv").resolve()
_PACKAGES = ("tensorflow", "keras", "jax", "torch", "optuna", "keras-tuner", "mlflow", "numpy")


def environment() -> dict[str, Any]:
    """Date, commit, machine and the versions that shape the figures."""
    versions = {}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    names = gpu_names()
    devices = f"{len(names)} x {names[0]}" if names else "CPU only"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {devices}",
        "python": platform.python_version(),
        "backend": os.environ.get("KERAS_BACKEND") or default_backend(gpu=first_gpu()),
        "versions": versions,
    }


def _commit() -> str:
    """The code the figures come from: the short commit, "+changes" when the tree differs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "tuner", "bench/*.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:  # no git on this host
        return "unknown"
    return f"{head or 'unknown'}{'+changes' if changed else ''}"


def first_gpu() -> str | None:
    """The first visible GPU (None on a CPU-only machine): what `tuner tune` trains on."""
    return next(iter(visible_gpus()), None)


def tune(folder: Path, study: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `tuner tune` on the scratch stores in `folder`; return its JSON summary."""
    command = [
        sys.executable, "-m", "tuner", "tune", "--study", study,
        "--storage", storage(folder), "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--json", *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=folder, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def champion(summary: dict[str, Any], metric: str) -> tuple[dict[str, float], dict[str, float]]:
    """The champion's test and validation `metric` (the ensemble's where it validated
    better than the best single trial), and the best single trial's."""
    single = {"test": summary["best_test"][metric], "val": summary["best_val"][metric]}
    record = summary.get("ensemble") or {}
    if record.get("champion"):
        return {
            "test": record["test_metrics"][metric],
            "val": record["val_metrics"][metric],
        }, single
    return single, single


def storage(folder: Path) -> str:
    return f"sqlite:///{folder / 'optuna.db'}"


def load_study(folder: Path, study: str) -> Any:
    """The study stored in the scratch folder."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study, storage=storage(folder))


def study_trials(folder: Path, study: str) -> list[Any]:
    """The study's trials in the order they started (trial number)."""
    return sorted(load_study(folder, study).get_trials(deepcopy=False), key=lambda t: t.number)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
