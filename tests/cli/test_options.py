"""Each `tuner tune` option is declared once (TuneConfig in tuner/config.py): the
command line, the Python signature and the docs' table are made from it."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re

import pytest

import tuner
from tests.conftest import ROOT
from tuner.cli.main import build_parser
from tuner.config import OPTIONS, TuneConfig
from tuner.errors import InputError, Opt, worded
from tuner.options import flag


def _tune_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["tune"]


def _docs_hooks():  # docs/hooks.py, as MkDocs loads it
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_help_the_python_signature_and_the_docs_list_the_same_options() -> None:
    flags = {s for a in _tune_parser()._actions for s in a.option_strings} - {"-h", "--help"}
    keywords = set(inspect.signature(tuner.tune).parameters) - {"dataset", "space", "study"}
    hooks = _docs_hooks()
    table = set(re.findall(r"^\| `(--[a-z-]+)` \|", hooks.options_table(), re.MULTILINE))
    declared = {flag(name) for name in OPTIONS}

    assert flags - {"--json"} == declared  # --json: how the CLI prints, not a study option
    assert {flag(k) for k in keywords} | {"--dataset", "--study"} == declared - {"--space"}
    assert table == declared and len(declared) >= 30
    assert hooks.OPTIONS_MARK in (ROOT / "docs" / "cli.md").read_text()  # the table's place


def test_a_declared_default_and_help_reach_every_edge() -> None:
    defaults = TuneConfig()
    help_text = " ".join(_tune_parser().format_help().split())
    signature = inspect.signature(tuner.tune).parameters
    assert signature["max_epochs"].default == defaults.max_epochs == 20
    assert "so each gets enough steps) (default: 20)" in help_text
    assert "max_epochs: epochs a trial may train" in (tuner.tune.__doc__ or "")
    # The help in the API's words: flags become keywords there.
    assert "(kt_tuner hyperband" not in tuner.tune.__doc__ and "engine=keras-tuner" in (
        tuner.tune.__doc__ or ""
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_epochs": 0}, "--max-epochs must be at least 1, but got 0."),
        ({"sampler": "tp"}, "--sampler must be one of tpe, random, gp, cmaes, grid, but got 'tp'."),
        ({"workers": 65}, "--workers must be at most 64 local processes, but got 65;"),
        ({"ensemble": 1}, "--ensemble must be 0 (off) or 2-10 trials, but got 1;"),
        ({"timeout": float("nan")}, "--timeout must be positive seconds, but got nan;"),
        ({"fuse": 0}, "--fuse must be at least 1, but got 0."),
        ({"fuse": "many"}, "--fuse must be a group size (1-16) or 'auto', but got 'many'."),
        ({"fuse": True}, "--fuse must be a group size (1-16) or 'auto', but got True."),
        ({"fuse": 2, "engine": "keras-tuner"}, "--fuse 2 fills groups with trials the sampler"),
        (
            {"fuse": 2, "sampler": "grid"},
            "--fuse 2 fills groups with trials the sampler draws, but got --sampler grid;",
        ),
    ],
)
def test_the_declared_check_of_an_option_runs_wherever_it_is_given(
    options: dict, message: str
) -> None:
    with worded(flags=True), pytest.raises(InputError) as raised:  # as the CLI makes it
        TuneConfig(**options)
    assert str(raised.value).startswith(message)
    # The option at fault is data on the error; Python's edge names keyword arguments.
    assert raised.value.option in options
    with pytest.raises(InputError) as in_python:
        TuneConfig(**options)
    assert in_python.value.option == raised.value.option
    assert "--" not in str(in_python.value)
    flags = {f"--{k.replace('_', '-')} {v}": f"{k}={v}" for k, v in options.items()}
    flags |= {f"--{k.replace('_', '-')}": k for k in options}
    flags["--sampler grid"], flags["--engine keras-tuner"] = "sampler=grid", "engine=keras-tuner"
    expected = message
    for given in sorted(flags, key=len, reverse=True):
        expected = expected.replace(given, flags[given])
    assert str(in_python.value).startswith(expected)


def test_options_in_a_message_are_worded_by_the_edge_it_is_made_for() -> None:
    """An `Opt` is data (a keyword name and a value): the command line reads a flag,
    Python a keyword argument, and a shell command in backticks stays as typed."""
    with worded(flags=True):
        cli = f"{Opt('max_epochs', 0)}; pass {Opt('max_epochs')} 5"
    python = f"{Opt('max_epochs', 0)}; pass {Opt('max_epochs')} 5"
    assert cli == "--max-epochs 0; pass --max-epochs 5"
    assert python == "max_epochs=0; pass max_epochs 5"
    # A help text is shown on both edges from one declaration.
    help_text = OPTIONS["warm_start_trials"]
    assert "--warm-start study" in help_text.text(flags=True)
    assert "warm_start study" in help_text.text(flags=False)


def test_the_docs_usage_lines_are_the_parsers() -> None:
    hooks = _docs_hooks()
    block = hooks.usage_block()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert all(f"\ntuner {name} " in block or f"\ntuner {name}\n" in block
               or name == "tune" for name in sub.choices)  # fmt: skip
    assert "--trials-per-gpu TRIALS_PER_GPU" in block  # `tuner worker`'s, once missing by hand
    assert hooks.USAGE_MARK in (ROOT / "docs" / "cli.md").read_text()
