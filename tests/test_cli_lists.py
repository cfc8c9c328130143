"""`tuner datasets`, `tuner spaces` and `--help` list what is built in."""

from __future__ import annotations

import pytest

from tuner.cli import main


def test_datasets_lists_each_builtin_with_task_and_horizon(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["datasets"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("co2"))
    assert "forecasting" in line and "horizon=13" in line and "Mauna Loa" in line


def test_spaces_lists_the_default_space(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces"]) == 0
    assert "forecasting" in capsys.readouterr().out


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--help"]) == 0
    assert "--max-epochs" in capsys.readouterr().out
