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
    """The Makefile's dataset, space, sampler, pruner and seed, cut to 3 trials of
    2 rounds, in two fresh pairs of stores: the same parameters, states, per-round
    values and objective, to the bit."""
    runs = []
    for name in ("first", "second"):
        stores = Stores(tmp_path / name)
        stores.root.mkdir()
        monkeypatch.chdir(stores.root)
        args = ["tune", "--dataset", "co2", "--trials", "3", "--max-epochs", "2"]
        assert main([*args, "--sampler", "tpe", "--pruner", "hyperband", "--seed", "42",
                     *stores.args()]) == 0  # fmt: skip
        study = optuna.load_study(study_name="co2", storage=stores.storage)
        runs.append([(t.params, t.state, t.intermediate_values, t.value) for t in study.trials])
    assert len(runs[0]) == 3
    for number, (first, second) in enumerate(zip(*runs, strict=True)):
        assert first == second, f"trial {number} differs between two identical runs"


def test_the_readme_figures_come_from_the_generator_at_a_commit_of_this_history() -> None:
    """The README's `make tune` block is bench/readme_tune.py's output (between its
    markers, never typed) and names a commit this checkout descends from."""
    import re
    import shutil
    import subprocess

    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- make-tune figures: written by bench/readme_tune.py, do not edit -->"
                      r"\n(.*?)\n<!-- end of make-tune figures -->", text, re.S)  # fmt: skip
    assert block, "README.md lost the markers bench/readme_tune.py writes between"
    commit = re.search(r"from a fresh clone at commit ([0-9a-f]{7,40}),", block.group(1))
    assert commit, block.group(1)[:300]
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the stated commit cannot be looked up")
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True
    )
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone: the stated commit may be outside its history")
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit.group(1), "HEAD"], cwd=ROOT, check=False
    )
    assert done.returncode == 0, f"README figures state {commit.group(1)}, not in this history"
