"""Shared fixtures: real stores under tmp_path and a shrunk configuration.

Tests shrink the configuration (tiny space, 2-3 epochs, few trials), never the
code: every study below trains real Keras models and writes a real MLflow store.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuner.cli.main import main

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

SPACES = Path(__file__).parent / "spaces"
ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """JAX's persistent compilation cache for every process of the run (xdist workers
    and the worker processes their studies start), kept in pytest's cache folder: the
    tiny studies compile the same programs again and again (about a fifth of a tiny
    study's CPU time). With a size limit JAX reads and writes it under a file lock."""
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is None:
        return
    folder = cache.mkdir("jax-compilation-cache")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 << 30))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """A failing test's report carries the crash logs `tuner` wrote in its folder
    (`tuner: unexpected error; traceback written to ...`): CI keeps the report, not
    the folder."""
    report = yield
    if report.failed and call.when == "call":
        stores = getattr(item, "funcargs", {}).get("stores")
        if isinstance(stores, Stores):
            for log in sorted(stores.root.glob("**/logs/tuner-*.log")):
                report.sections.append((f"crash log {log.name}", log.read_text()[-6000:]))
    return report


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


def start_tuner(
    *args: str, env: dict[str, str] | None = None, session: bool = False
) -> subprocess.Popen[str]:
    """`python -m tuner ARGS` in a child process, output captured as text; with
    `session`, in a process group of its own (as on a host of its own)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tuner", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=session,
    )


@dataclass(frozen=True)
class Finished:
    """A tiny finished study on a built-in dataset: its stores and its `--json` summary."""

    stores: Stores
    summary: dict


def made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `name`, filled by `build` once per test run and shared by the run's
    xdist workers: the first to ask builds it under a file lock while the others
    wait, then all read it (the pattern of pytest-xdist's documentation). A build
    that failed is not marked complete: the next caller clears it and tries again."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / f"once-{name}"
    with (base / f"once-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def finished_studies(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Finished]:
    """Tiny studies (`--trials 3 --max-epochs 2`, the task's default space) per built-in
    dataset, run once per test run and shared by the tests that read them."""
    cache: dict[str, Finished] = {}

    def build(name: str, folder: Path) -> None:
        out = io.StringIO()
        argv = ["tune", "--dataset", name, "--trials", "3", "--max-epochs", "2"]
        with contextlib.redirect_stdout(out):
            code = main([*argv, *Stores(folder).args(), "--json"])
        assert code == 0, f"tiny study on {name} failed"
        (folder / "summary.json").write_text(out.getvalue())

    def get(name: str) -> Finished:
        if name not in cache:
            folder = made_once(tmp_path_factory, f"study-{name}", lambda f: build(name, f))
            summary = json.loads((folder / "summary.json").read_text())
            cache[name] = Finished(Stores(folder), summary)
        return cache[name]

    return get


TWO_OBJECTIVE_BOUND = 700  # parameters: the tiny space's two-layer models have more


@pytest.fixture(scope="session")
def two_objective_study(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """A tiny study run once per test run with `--objectives val_loss,params`, a bound
    on parameters and `--pick params` (8 trials of tests/spaces/tiny.py on co2)."""

    def build(folder: Path) -> None:
        out = io.StringIO()
        argv = [
            "tune", "--study", "mo", "--space", str(SPACES / "tiny.py"), "--trials", "8",
            "--max-epochs", "3", "--patience", "2", "--objectives", "val_loss,params",
            "--constraint", f"params<={TWO_OBJECTIVE_BOUND}", "--pick", "params", "--json",
            *Stores(folder).args(),
        ]  # fmt: skip
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0, "the two-objective study failed"
        (folder / "summary.json").write_text(out.getvalue())

    folder = made_once(tmp_path_factory, "multi-objective", build)
    return Finished(Stores(folder), json.loads((folder / "summary.json").read_text()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1: an SQLite backend under `root` (or the
    database `backend`), artifacts served by the server from under `root`."""

    def __init__(self, root: Path, port: int | None = None, backend: str | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.backend = backend or f"sqlite:///{root / 'server.db'}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        """Start it; return once it answers its health check."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(self.port), "--backend-store-uri", self.backend,
             "--artifacts-destination", str(self.root / "server-artifacts"), "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Without MLflow's job runner (GenAI jobs): eight processes polling the
            # store, about one core busy for the server's whole life.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            start_new_session=True,  # its web server goes with it
        )  # fmt: skip
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self._process.poll() is None, (
                f"mlflow server exited ({self._process.returncode})"
            )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.5)
        raise AssertionError(f"mlflow server did not answer within {timeout:.0f} s")

    def kill(self) -> None:
        """kill -9: no clean-up, as when its host dies."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=30)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=30)


@contextlib.contextmanager
def mlflow_server(root: Path, port: int | None = None) -> Iterator[int]:
    """A real `mlflow server` (SQLite backend and served artifacts under `root`);
    yields its port once it answers, stops it on exit."""
    server = MlflowServer(root, port)
    try:
        server.start()
        yield server.port
    finally:
        server.stop()
