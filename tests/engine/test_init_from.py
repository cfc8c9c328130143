"""`--init-from`: trials start from an exported model's weights where the layers
match, and train from scratch (saying so) where they do not."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Stores
from tuner.cli.main import main

pytestmark = pytest.mark.slow

SPACE = """
def space(hp, data):
    hp.Fixed("seq_len", 16)
    hp.Fixed("units_0", {units})
    hp.Fixed("learning_rate", 0.01)
    hp.Fixed("batch_size", 256)
"""


def _space(stores: Stores, units: int) -> str:
    path = stores.root / f"space{units}.py"
    path.write_text(SPACE.format(units=units))
    return str(path)


def _tune(stores: Stores, study: str, units: int, epochs: int, *extra: str) -> optuna.Study:
    args = ["tune", "--study", study, "--space", _space(stores, units), "--trials", "1"]
    args += ["--max-epochs", str(epochs), "--pruner", "none", *stores.args(), *extra]
    assert main(args) == 0
    return optuna.load_study(study_name=study, storage=stores.storage)


def _first_epoch_loss(stores: Stores, study: optuna.Study) -> float:
    run_id = study.trials[0].user_attrs["mlflow_run_id"]
    history = MlflowClient(stores.tracking).get_metric_history(run_id, "epoch/loss")
    return next(m.value for m in history if m.step == 1)


def test_a_matching_trial_fine_tunes_and_another_trains_from_scratch(stores: Stores) -> None:
    fresh = _tune(stores, "fresh", 8, 8)
    bundle = stores.root / "bundle"
    assert main(["export", "--study", "fresh", "--out", str(bundle), *stores.args()]) == 0
    tuned = _tune(stores, "tuned", 8, 2, "--init-from", str(bundle))
    attr = tuned.trials[0].user_attrs["init_from"]
    assert attr.startswith(f"fine-tuned from {bundle}: 2 of 2 layers"), attr
    # Same data, same seed: only the starting weights differ.
    assert _first_epoch_loss(stores, tuned) < 0.5 * _first_epoch_loss(stores, fresh)
    run = MlflowClient(stores.tracking).get_run(tuned.trials[0].user_attrs["mlflow_run_id"])
    assert run.data.tags["init_from"] == attr
    other = _tune(stores, "other", 4, 2, "--init-from", str(bundle))
    assert other.trials[0].user_attrs["init_from"].startswith("from scratch: no recurrent layer")
    # The registry's champion works as a source too.
    registered = _tune(stores, "registered", 8, 1, "--init-from", "models:/fresh@champion")
    attr = registered.trials[0].user_attrs["init_from"]
    assert attr.startswith("fine-tuned from models:/fresh@champion: 2 of 2 layers"), attr


def test_init_from_a_folder_without_a_model_exits_2(
    stores: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tune", "--study", "x", "--space", _space(stores, 8), *stores.args()]
    assert main([*args, "--init-from", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an exported bundle" in err[0], err


def test_init_from_an_unknown_registered_model_exits_2(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tune", "--study", "x", "--space", _space(stores, 8), "--trials", "1", *stores.args()]
    assert main([*args, "--init-from", "models:/nosuch@champion"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tuner: error: --init-from models:/nosuch@champion: cannot be")
