"""Shared fixtures: real stores under tmp_path and a shrunk configuration.

Tests shrink the configuration (tiny space, 2-3 epochs, few trials), never the
code: every study below trains real Keras models and writes a real MLflow store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

SPACES = Path(__file__).parent / "spaces"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stores:
    root: Path

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def tracking(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def args(self) -> list[str]:
        return ["--storage", self.storage, "--tracking-uri", self.tracking]


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stores:
    monkeypatch.chdir(tmp_path)  # crash logs and defaults land in tmp_path
    return Stores(tmp_path)


def tiny_tune_args(stores: Stores, *, study: str = "tiny", trials: int = 3) -> list[str]:
    return [
        "tune",
        "--study",
        study,
        "--space",
        str(SPACES / "tiny.py"),
        "--trials",
        str(trials),
        "--max-epochs",
        "3",
        "--patience",
        "2",
        *stores.args(),
    ]


def start_tuner(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m tuner ARGS` in a child process, output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "tuner", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
