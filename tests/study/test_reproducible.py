"""`make tune`'s study repeats itself: the README's figures come from one run, and
anyone who runs the same command at the same commit gets the same trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.conftest import Stores
from tuner.cli.main import main

pytestmark = pytest.mark.slow


def test_the_default_study_gives_the_same_trials_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Makefile's dataset, space, sampler, pruner and seed, cut to 5 trials of
    3 rounds, in two fresh pairs of stores: the same parameters, states, per-round
    values and objective, to the bit."""
    runs = []
    for name in ("first", "second"):
        stores = Stores(tmp_path / name)
        stores.root.mkdir()
        monkeypatch.chdir(stores.root)
        args = ["tune", "--dataset", "co2", "--trials", "5", "--max-epochs", "3"]
        assert main([*args, "--sampler", "tpe", "--pruner", "hyperband", "--seed", "42",
                     *stores.args()]) == 0  # fmt: skip
        study = optuna.load_study(study_name="co2", storage=stores.storage)
        runs.append([(t.params, t.state, t.intermediate_values, t.value) for t in study.trials])
    assert len(runs[0]) == 5
    for number, (first, second) in enumerate(zip(*runs, strict=True)):
        assert first == second, f"trial {number} differs between two identical runs"
