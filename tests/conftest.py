"""Shared fixtures: real stores under tmp_path and a shrunk configuration.

Tests shrink the configuration (tiny space, 2-3 epochs, few trials), never the
code: every study below trains real Keras models and writes a real MLflow store.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuner.cli.main import main

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


@dataclass(frozen=True)
class Finished:
    """A tiny finished study on a built-in dataset: its stores and its `--json` summary."""

    stores: Stores
    summary: dict


@pytest.fixture(scope="session")
def finished_studies(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Finished]:
    """Tiny studies (`--trials 3 --max-epochs 2`, the task's default space) per built-in
    dataset, run once per session and shared by the tests that read them."""
    cache: dict[str, Finished] = {}

    def get(name: str) -> Finished:
        if name not in cache:
            stores = Stores(tmp_path_factory.mktemp(f"study-{name}"))
            out = io.StringIO()
            argv = ["tune", "--dataset", name, "--trials", "3", "--max-epochs", "2"]
            with contextlib.redirect_stdout(out):
                code = main([*argv, *stores.args(), "--json"])
            assert code == 0, f"tiny study on {name} failed"
            cache[name] = Finished(stores, json.loads(out.getvalue()))
        return cache[name]

    return get


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(root: Path, port: int | None = None) -> Iterator[int]:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend and served artifacts
    under `root`); yields its port once it answers, stops it on exit."""
    port = port or free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("mlflow server did not start within 120 s")
        time.sleep(2)  # the port opens before the app answers
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
