"""`tuner datasets`, `tuner spaces` and `--help` list what is built in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tuner.cli.main import build_parser, main
from tuner.data.catalog import builtin_datasets


def test_datasets_lists_each_builtin_with_task_shape_split_and_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["datasets", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(builtin_datasets())
    # Each built-in's row, as a user reads it: task, shape, split sizes, window rule,
    # how trials are selected, and where the data comes from.
    expected = {
        "alice": ("char_lm", "144,430 characters, 70 symbols", [115544, 14443, 14443],
                  "64, 128, 256 characters", 0, "Project Gutenberg"),
        "co2": ("forecasting", "2284 rows x 1 columns (1 target), horizon 13",
                [1598, 342, 344], "1, 2, 3 x lookback (52)", 0, "public domain"),
        "digits": ("classification", "1797 sequences x 8 steps x 8 features, 10 classes",
                   [1257, 270, 270], "whole sequences (no window)", 0, "scikit-learn"),
        "italy_power_demand": ("classification",
                               "1096 sequences x 24 steps x 1 features, 2 classes",
                               [53, 14, 1029], "whole sequences (no window)", 5, "UCR"),
        "japanese_vowels": ("classification",
                            "640 sequences x up to 29 steps x 12 features, 9 classes",
                            [216, 54, 370], "whole sequences (no window)", 0, "UCI"),
        "seattle_weather": ("forecasting", "1461 rows x 4 columns (1 target), horizon 7",
                            [1022, 219, 220], "1, 2, 3 x lookback (28)", 0, "NOAA"),
    }  # fmt: skip
    assert set(expected) == set(rows)
    for name, (task, shape, sizes, windows, cv, source) in expected.items():
        row = rows[name]
        assert (row["task"], row["shape"], row["split_sizes"]) == (task, shape, sizes), name
        assert (row["windows"], row["cv"]) == (windows, cv), name
        selection = f"{cv}-fold cross-validation" if cv else "validation split"
        assert row["selection"] == f"{selection} (test split never used)", name
        assert source in row["source"] and row["description"], name
    assert main(["datasets"]) == 0
    table = capsys.readouterr().out.splitlines()
    for name, (task, shape, sizes, *_) in expected.items():
        line = next(line for line in table if line.startswith(f"{name} "))
        assert task in line and "/".join(map(str, sizes)) in line and shape in line, line


def test_spaces_lists_the_default_space(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces"]) == 0
    assert "forecasting" in capsys.readouterr().out


def test_help_exits_0_and_every_tune_option_says_what_and_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    tune = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["tune"]
    options = [a for a in tune._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 20
    for action in options:
        assert action.help, f"{action.option_strings[0]} has no help text"
        if action.default not in (None, False):
            assert f"(default: {action.default})" in text or "default" in action.help, (
                action.option_strings[0]
            )


def test_an_unexpected_error_where_logs_cannot_be_written_still_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A working folder where logs/ cannot be made (here: a file named logs; as a
    # read-only folder does for a user who is not root): the log goes to the
    # temporary folder, and the crash logger itself does not crash.
    import tuner.cli.lists as lists

    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").write_text("not a folder")
    monkeypatch.setattr(lists, "datasets", broken)
    assert main(["datasets"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    log = Path(err.split("traceback written to ")[1])
    assert log.parent.name == "tuner-logs" and "RuntimeError: a bug" in log.read_text()
    log.unlink()


def test_help_states_the_defaults_a_user_asks_about(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "forecast horizon in steps (default: the dataset definition's, else 1)" in text
    assert "default: 3 on classification sets under 200 training sequences" in text


def test_make_ui_is_offered_for_a_local_store_only() -> None:
    from tuner.cli.main import mlflow_line

    link = "http://127.0.0.1:5000/#/experiments/1"
    assert mlflow_line(link, "sqlite:///mlflow/mlflow.db").endswith("(`make ui` serves it)")
    assert mlflow_line(link, "http://tracking.example:5000") == f"MLflow runs: {link}"


@pytest.mark.parametrize(("study", "folder"), [("co2", "exports/co2-"), ("", "exports/latest-")])
def test_make_export_names_the_folder_after_the_study(study: str, folder: str) -> None:
    import subprocess

    from tests.conftest import ROOT

    dry = subprocess.run(["make", "-n", "export", f"STUDY={study}"], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout  # fmt: skip
    assert f"--out {folder}" in dry, dry
