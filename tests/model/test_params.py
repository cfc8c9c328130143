"""Checked parameters: the names a space defines are the names the model reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Stores, tiny_tune_args
from tuner.cli.main import main
from tuner.data.catalog import builtin_datasets, load_dataset
from tuner.errors import InputError
from tuner.model.build import build_model, make_optimizer
from tuner.model.params import DEFAULTS, TrialParams, check_space_names, pattern
from tuner.space import load_space, probe_space
from tuner.tasks.base import get_task

TASK_DATASETS = {"forecasting": "co2", "classification": "japanese_vowels", "char_lm": "alice"}


@pytest.mark.parametrize("task", sorted(TASK_DATASETS))
def test_the_model_reads_what_the_default_space_defines(task: str) -> None:
    """Build the task's model from the probe's values (every choice at its first and
    last value): what the builder reads is what the task's `reads` declares, and it reads every
    name the space defines."""
    data = load_dataset(builtin_datasets()[TASK_DATASETS[task]])
    candidates = probe_space(load_space(task), data.info)
    assert candidates, "the probe recorded no names"
    read: set[str] = set()
    for pick in (0, -1):
        params = TrialParams({name: values[pick] for name, values in candidates.items()})
        build_model(params, data.info)
        make_optimizer(params, steps_per_epoch=1, epochs=1)
        params["batch_size"]  # the trainer's reads: batches, plateau schedule, windows
        params["lr_schedule"]
        if task != "classification":
            params["seq_len"]
        read |= params.read
    assert read <= get_task(task).reads
    assert {pattern(n) for n in candidates} <= read
    assert all(name in DEFAULTS for name in get_task(task).reads)


def test_params_fill_defaults_and_record_reads() -> None:
    params = TrialParams({"units_1": 48})
    assert params["units_1"] == 48 and params["units_0"] == DEFAULTS["units_{i}"]
    assert params["learning_rate"] == 1e-3
    assert params.read == {"units_{i}", "learning_rate"}
    with pytest.raises(KeyError, match="not a hyperparameter"):
        params["learning_rat"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'hp.Float("learning_rat", 1e-4, 1e-2, sampling="log")',
            "defines 'learning_rat', which the forecasting model never reads; "
            "did you mean 'learning_rate'?",
        ),
        (
            'hp.Choice("embedding_dim", [16, 32])',
            "defines 'embedding_dim', which the forecasting model never reads",
        ),
    ],
)
def test_a_misspelt_or_unused_name_exits_2_before_training(
    stores: Stores, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    space = Path(stores.root / "space.py")
    space.write_text(f'def space(hp, data):\n    hp.Choice("seq_len", [8])\n    {line}\n')
    args = tiny_tune_args(stores)
    args[args.index("--space") + 1] = str(space)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (stores.root / "mlflow.db").exists() or "Run" not in err[0]


def test_a_character_space_cannot_make_its_model_read_ahead() -> None:
    """A bidirectional character model would see the character it predicts."""
    check_space_names(["bidirectional"], task="classification", space="s")
    with pytest.raises(InputError, match="so it never reads ahead; rename or remove it"):
        check_space_names(["bidirectional"], task="char_lm", space="s")
