"""A user's space module cannot hang, end or crash the tuner, nor start a trial with
values no model can take: exit 2, one line naming the file, nothing created."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Stores, tiny_tune_args
from tuner.cli.main import main
from tuner.space import PROBE_SECONDS

# A space that works, and the line added to it (or the module that replaces it).
BASE = 'def space(hp, data):\n    hp.Choice("seq_len", [8])\n    hp.Fixed("batch_size", 256)\n'

MODULES = [
    # (module text, words the message must contain)
    ("import os\nos._exit(0)\n" + BASE, ["ended the Python process (exit code 0)"]),
    ("import sys\nsys.exit(0)\n" + BASE, ["importing it called sys.exit(0) (line 2)"]),
    ("raise RuntimeError('no GPU here')\n" + BASE, ["importing it raised RuntimeError: no GPU"]),
    (BASE + "    import sys; sys.exit(3)\n", ["space(hp, data) called sys.exit(3) (line 4)"]),
    (BASE + "    raise ValueError('boom')\n", ["space(hp, data) raised ValueError: boom (line 4)"]),
    (BASE + "    hp.get('nothing')\n", ["hp.get('nothing') names no parameter"]),
    ("def space(hp):\n    pass\n", ["space(hp, data) raised TypeError", "positional argument"]),
    ("space = 3\n", ["must define a function space(hp, data)"]),
    (BASE + "    data.no_such_field\n", ["raised AttributeError", "no_such_field", "(line 4)"]),
    (BASE + "    hp.Choice('cell', ['transformer'])\n", ["'transformer'", "lstm, gru"]),
    (BASE + "    hp.Choice('optimizer', ['adamw'])\n", ["optimizer must be one of adam, sgd"]),
    (BASE + "    hp.Choice('normalize', ['zscore'])\n", ["normalize must be one of none, last"]),
    (BASE + "    hp.Choice('lr_schedule', ['step'])\n", ["lr_schedule must be one of constant"]),
    (BASE + "    hp.Choice('naive_head', ['drift'])\n", ["naive_head must be one of none"]),
    (BASE + "    hp.Float('learning_rate', float('nan'), 1e-2)\n", ["finite numbers", "nan"]),
    (BASE + "    hp.Float('learning_rate', 1e-4, float('inf'))\n", ["finite numbers", "inf"]),
    (BASE + "    hp.Float('learning_rate', 0.0, 1e-2)\n", ["must be a finite number > 0"]),
    (BASE + "    hp.Fixed('units_0', -4)\n", ["'units_0' can take -4", "whole number >= 1"]),
    (BASE + "    hp.Fixed('units_0', 8.5)\n", ["'units_0' can take 8.5", "whole number >= 1"]),
    (BASE + "    hp.Fixed('units_0', None)\n", ["'units_0' can take None"]),
    (BASE + "    hp.Fixed('layers', 0)\n", ["'layers' can take 0", "whole number >= 1"]),
    (BASE.replace("256", "0"), ["'batch_size' can take 0", "whole number >= 1"]),
    (BASE + "    hp.Float('dropout', 0.0, 1.5)\n", ["dropout must be", ">= 0 and < 1"]),
    (BASE + "    hp.Fixed('l2', -1e-4)\n", ["l2 must be a finite number >= 0"]),
    (BASE + "    hp.Fixed('clipnorm', float('nan'))\n", ["'clipnorm' can take nan"]),
    (BASE + "    hp.Choice('bidirectional', ['yes'])\n", ["bidirectional must be True or False"]),
    (BASE + "    hp.Float('momentum', 0.5, 1.0)\n", ["momentum must be", "< 1"]),
    (BASE.replace("[8]", "[0]"), ["seq_len values must be positive integers", "[0]"]),
    (BASE + "    hp.Fixed('freeze_recurrent_epochs', -1)\n", ["whole number >= 0"]),
]


@pytest.mark.parametrize(("text", "words"), MODULES, ids=[str(i) for i in range(len(MODULES))])
def test_a_bad_space_module_exits_2_with_one_line_and_creates_nothing(
    stores: Stores, capsys: pytest.CaptureFixture[str], text: str, words: list[str]
) -> None:
    path = stores.root / "user_space.py"
    path.write_text(text)
    code = main([*tiny_tune_args(stores), "--space", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert not (stores.root / "optuna.db").exists()


@pytest.mark.parametrize("where", ["import", "space"])
def test_an_endless_loop_in_a_space_fails_within_the_stated_limit(
    stores: Stores, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    loop = "while True:\n    pass\n" if where == "import" else "    while True:\n        pass\n"
    path = stores.root / "loop.py"
    path.write_text(loop + BASE if where == "import" else BASE + loop)
    started = time.monotonic()
    code = main([*tiny_tune_args(stores), "--space", str(path)])
    took = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"took more than {PROBE_SECONDS} s (an endless loop?)" in err
    assert took < PROBE_SECONDS + 15, took  # the limit, and loading the data
    assert not (stores.root / "optuna.db").exists()


def test_a_space_that_prints_leaves_the_json_on_stdout_intact(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stores.root / "chatty.py"
    path.write_text(
        "print('importing the space')\n"
        + BASE
        + "    hp.Int('units_0', 4, 8, step=4)\n    print('drew', hp.values)\n"
    )
    args = [*tiny_tune_args(stores, trials=1), "--space", str(path), "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)  # nothing but the summary
    assert summary["best_trial"] == 0
    assert "importing the space" in err and "drew" in err
