"""The UIs in a real browser: Playwright driving Debian's Chromium headless.

The MLflow UI is served by the same command as `make ui` over a tiny finished
study; optuna-dashboard by the same command as `make dashboard`. Screenshots
are saved under the test's tmp_path (and printed on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Finished, free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must apt-get install chromium")
        pytest.skip("no Chromium: as root, `apt-get install chromium`, then run pytest")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _serve(args: list[str], url: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server (its stdout in `log`) and wait until `url` answers."""
    out = log.open("wb") if log else subprocess.DEVNULL
    server = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(f"{args[0]} did not start serving {url}") from None
            time.sleep(0.5)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_mlflow_ui_shows_nested_trials_and_compares_two(
    browser: Any, finished_studies: Callable[[str], Finished], tmp_path: Path
) -> None:
    study = finished_studies("co2")
    client = MlflowClient(study.stores.tracking)
    experiment = client.get_experiment_by_name("co2")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("role") == "tune")
    trials = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda r: r.info.run_name,
    )[:2]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The command of `make ui`, over this study's store: it prints each study's link.
    log = tmp_path / "ui.out"
    server = _serve(
        [_bin("tuner"), "ui", "--tracking-uri", study.stores.tracking, "--port", str(port)],
        base,
        log,
    )
    links = dict(line.split(": ", 1) for line in log.read_text().splitlines() if ": " in line)
    assert links["co2"].startswith(f"{base}/#/experiments/{experiment.experiment_id}/")
    page = browser.new_page(viewport={"width": 2400, "height": 1000})
    try:
        page.goto(links["co2"], wait_until="load")  # the link as printed, no view chosen
        row = page.locator("[role=row]", has_text=parent.info.run_name[:12]).first
        row.wait_for(timeout=60_000)
        assert "/runs" in page.url  # the runs table, not the GenAI overview
        objective = page.locator("[role=columnheader]", has_text="val_mse").first
        objective.wait_for(timeout=30_000)  # the objective's column, chosen by nobody
        assert objective.inner_text().strip() == "val_mse"
        # MLflow 3.17 says the link's view is shared; "Override saved view" makes it
        # the user's own: the plain runs address then opens with the column, no banner.
        banner = page.get_by_text("You're viewing a shared view")
        banner.wait_for(timeout=30_000)
        page.get_by_role("button", name="Override saved view").click()
        banner.wait_for(state="hidden", timeout=30_000)
        page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs", wait_until="load")
        row = page.locator("[role=row]", has_text=parent.info.run_name[:12]).first
        row.wait_for(timeout=60_000)
        page.locator("[role=columnheader]", has_text="val_mse").first.wait_for(timeout=30_000)
        assert page.get_by_text("You're viewing a shared view").count() == 0
        # The parent row's expander (a plus icon) shows the nested trial runs.
        row.locator("path[d^='M7.25 7.25V4.5']").locator("xpath=ancestor::span[1]/..").click()
        for trial in trials:
            page.get_by_text(trial.info.run_name, exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=tmp_path / "mlflow_runs.png")
        ids = json.dumps([t.info.run_id for t in trials])
        page.goto(
            f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}",
            wait_until="load",
        )
        page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
        body = page.inner_text("body")
        for name in ("learning_rate", "seq_len", "batch_size", "val_loss", "val_mse"):
            assert name in body, f"{name} not shown in the comparison"
        for trial in trials:
            assert trial.info.run_name in body
            assert str(trial.data.params["seq_len"]) in body
        page.screenshot(path=tmp_path / "mlflow_compare.png", full_page=True)
    finally:
        page.close()
        server.terminate()
        server.wait(timeout=60)
    assert (tmp_path / "mlflow_compare.png").stat().st_size > 10_000


def test_optuna_dashboard_loads_the_study(
    browser: Any, finished_studies: Callable[[str], Finished], tmp_path: Path
) -> None:
    study = finished_studies("co2")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The command of `make dashboard`, over this study's storage.
    server = _serve(
        [
            _bin("optuna-dashboard"),
            study.stores.storage,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"{base}/dashboard",
    )
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        page.goto(f"{base}/dashboard", wait_until="load")
        card = page.get_by_text("1. co2").first  # the study list
        card.wait_for(timeout=60_000)
        card.click()
        page.get_by_text("Best Trial (number=").first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
        body = page.inner_text("body")
        assert f"Best Trial (number={study.summary['best_trial']})" in body
        assert "Hyperparameter Importance" in body
    finally:
        page.close()
        server.terminate()
        server.wait(timeout=60)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_optuna_dashboard_shows_a_two_objective_study(
    browser: Any, two_objective_study: Finished, tmp_path: Path
) -> None:
    """`--objectives`: the same study in optuna-dashboard, its objectives named and its
    Pareto front drawn."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    storage = two_objective_study.stores.storage
    server = _serve(
        [_bin("optuna-dashboard"), storage, "--host", "127.0.0.1", "--port", str(port)],
        f"{base}/dashboard",
    )
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        page.goto(f"{base}/dashboard", wait_until="load")
        card = page.get_by_text("1. mo").first
        card.wait_for(timeout=60_000)
        card.click()
        page.get_by_text("Pareto Front").first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "dashboard_front.png", full_page=True)
        body = page.inner_text("body")
        assert "val_mse" in body and "params" in body, body[:2000]
        best = body.split("Best Trials", 1)[1]  # the dashboard's front: the study's front
        for row in two_objective_study.summary["front"]:
            assert f"Trial {row['trial']}\n\nObjective Values = [{row['val_mse']}" in best, best
    finally:
        page.close()
        server.terminate()
        server.wait(timeout=60)
    assert (tmp_path / "dashboard_front.png").stat().st_size > 10_000
