"""`tuner datasets`, `tuner spaces` and `--help` list what is built in."""

from __future__ import annotations

import json

import pytest

from tuner.cli.main import main
from tuner.data.catalog import builtin_datasets


def test_datasets_lists_each_builtin_with_task_shape_split_and_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["datasets", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(builtin_datasets())
    co2 = rows["co2"]
    assert co2["task"] == "forecasting" and "horizon 13" in co2["shape"]
    assert co2["split_sizes"] == [1598, 342, 344] and "public domain" in co2["source"]
    vowels = rows["japanese_vowels"]
    assert vowels["shape"] == "640 sequences x up to 29 steps x 12 features, 9 classes"
    assert rows["alice"]["task"] == "char_lm"
    assert main(["datasets"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in rows)


def test_spaces_lists_the_default_space(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces"]) == 0
    assert "forecasting" in capsys.readouterr().out


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--help"]) == 0
    assert "--max-epochs" in capsys.readouterr().out
