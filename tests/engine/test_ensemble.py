"""Top-K ensembles (`--ensemble K`): one model of built-in layers that averages
its members, scored like a trial, champion only when it validates better."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, SPACES, Stores
from tuner.cli.main import main
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.engine.ensemble import ensemble_model
from tuner.model.build import build_model
from tuner.model.sample import generate


def test_ensemble_loads_in_plain_keras_and_is_the_mean_of_its_members(tmp_path: Path) -> None:
    info = load_dataset(resolve_dataset("co2")).info
    members = [
        build_model({"seq_len": 52, "units_0": 4, "normalize": "revin"}, info),
        build_model({"seq_len": 26, "units_0": 8, "naive_head": "persistence"}, info),
    ]
    x = np.random.default_rng(0).normal(size=(5, 52, 1)).astype("float32")
    mean = (members[0].predict(x, verbose=0) + members[1].predict(x[:, 26:], verbose=0)) / 2
    _check_in_a_fresh_process(ensemble_model(members, info), x, mean, tmp_path)


def _check_in_a_fresh_process(
    model: keras.Model, x: np.ndarray, expected: np.ndarray, folder: Path
) -> None:
    """Saved, `model` loads in a process that never imports this package (safe
    mode: built-in layers only) and answers `expected` for `x`."""
    model.save(folder / "ensemble.keras")
    np.save(folder / "x.npy", x)
    np.save(folder / "expected.npy", expected)
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.saving.load_model({str(folder / 'ensemble.keras')!r}, safe_mode=True)\n"
        f"y = m.predict(np.load({str(folder / 'x.npy')!r}), verbose=0)\n"
        f"np.testing.assert_allclose(y, np.load({str(folder / 'expected.npy')!r}), rtol=1e-5, "
        "atol=1e-6)\n"
        "assert not any(name.startswith('tuner') for name in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_study_reports_the_ensemble_beside_the_best_trial(stores: Stores) -> None:
    out = io.StringIO()
    argv = [
        "tune", "--dataset", "co2", "--space", str(SPACES / "tiny.py"), "--trials", "3",
        "--max-epochs", "2", "--pruner", "none", "--ensemble", "2", *stores.args(), "--json",
    ]  # fmt: skip
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    summary = json.loads(out.getvalue())
    ensemble = summary["ensemble"]
    assert len(ensemble["members"]) == 2 and summary["best_trial"] in ensemble["members"]
    assert ensemble["retrained"] == []  # the members are the models their trials kept
    assert ensemble["best_single_value"] == pytest.approx(summary["best_val"]["mse"])
    assert ensemble["champion"] == (ensemble["val_metrics"]["mse"] < summary["best_val"]["mse"])
    client = MlflowClient(stores.tracking)
    run = client.get_run(ensemble["mlflow_run_id"])
    assert run.data.metrics["val_mse"] == pytest.approx(ensemble["val_metrics"]["mse"])
    champion = client.get_model_version_by_alias("co2", "champion")
    # Test metrics exist only for the champion; the alias points at it.
    assert ("test_metrics" in ensemble) == ensemble["champion"]
    assert (champion.run_id == run.info.run_id) == ensemble["champion"]


def test_char_ensemble_loads_in_plain_keras_and_is_the_mean_of_its_members(
    tmp_path: Path,
) -> None:
    """Character models: the ensemble answers the mean of its members' logits on any
    input length, and text is generated from it as from a single model."""
    data = load_dataset(resolve_dataset("alice"))
    info = data.info
    common = {"embedding_dim": 8, "cell": "gru", "dropout": 0.0}
    members = [
        build_model({**common, "seq_len": 16, "units_0": 4}, info),
        build_model({**common, "seq_len": 32, "units_0": 8, "attention": True}, info),
    ]
    x = np.random.default_rng(0).integers(0, info.vocab_size, size=(3, 40)).astype("int32")
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    model = ensemble_model(members, info)
    text = generate(model, data.vocab, "Alice ", context=8, length=12, temperature=1.0, seed=0)
    assert text.startswith("Alice ") and len(text) == 18
    _check_in_a_fresh_process(model, x, expected, tmp_path)


@pytest.mark.slow
def test_a_char_study_scores_and_records_its_ensemble(stores: Stores) -> None:
    book = stores.root / "book.txt"  # a user's text: the first chapters of the built-in one
    book.write_text((ROOT / "datasets" / "alice.txt").read_text()[:30_000])
    out = io.StringIO()
    argv = [
        "tune", "--dataset", str(book), "--space", str(SPACES / "tiny_chars.py"), "--trials",
        "2", "--max-epochs", "1", "--pruner", "none", "--ensemble", "2", *stores.args(),
        "--json",
    ]  # fmt: skip
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    summary = json.loads(out.getvalue())
    ensemble = summary["ensemble"]
    assert sorted(ensemble["members"]) == [0, 1]
    assert ensemble["retrained"] == []
    client = MlflowClient(stores.tracking)
    kept = []  # each member trial's own trained model, in its MLflow run
    trials = optuna.load_study(study_name="book", storage=stores.storage).trials
    for trial in trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        files = [a.path for a in client.list_artifacts(run_id, "ensemble_member")]
        assert files == ["ensemble_member/model.keras"]
        local = client.download_artifacts(run_id, files[0], str(stores.root))
        kept.append(keras.saving.load_model(local))
    data = load_dataset(resolve_dataset(str(book)))
    val = data.windows(max(t.params["seq_len"] for t in trials))["val"]
    logits = np.mean([m.predict(val.x, verbose=0) for m in kept], axis=0)
    assert ensemble["val_metrics"]["bpc"] == pytest.approx(data.metrics(val.y, logits)["bpc"], 1e-4)
    assert ensemble["best_single_value"] == pytest.approx(summary["best_val"]["bpc"])
    assert ensemble["champion"] == (ensemble["val_metrics"]["bpc"] < summary["best_val"]["bpc"])
    assert 0 < ensemble["val_metrics"]["bpc"] < summary["baselines"]["unigram_val"]["bpc"] + 1
    assert ("test_metrics" in ensemble) == ensemble["champion"]
    run = client.get_run(ensemble["mlflow_run_id"])
    assert run.data.metrics["val_bpc"] == pytest.approx(ensemble["val_metrics"]["bpc"])
    champion = client.get_model_version_by_alias("book", "champion")
    assert (champion.run_id == run.info.run_id) == ensemble["champion"]


@pytest.mark.slow
def test_ensemble_of_one_exits_2(stores: Stores) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["tune", "--ensemble", "1", *stores.args()])
    assert code == 2 and "--ensemble must be 0 (off) or 2-10" in err.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "members"), [([], [0, 1]), (["--ensemble", "0"], None)])
def test_small_classification_sets_on_a_validation_split_average_by_default(
    stores: Stores, flag: list[str], members: list[int] | None
) -> None:
    """Under 200 training sequences and no cross-validation, the champion may be the
    top-3 ensemble of the models the trials kept (two here: two trials); `--ensemble
    0` turns it off."""
    data = load_dataset(resolve_dataset("italy_power_demand", cv=0))
    assert (
        data.info.default_ensemble == 3
        and load_dataset(resolve_dataset("italy_power_demand")).info.default_ensemble == 0
    )  # cross-validated: its folds would need every member again
    out = io.StringIO()
    argv = [
        "tune", "--dataset", "italy_power_demand", "--cv", "0", "--trials", "2",
        "--space", str(SPACES / "recurrent_classifier.py"), "--max-epochs", "2",
        "--pruner", "none", *flag, *stores.args(), "--json",
    ]  # fmt: skip
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    ensemble = json.loads(out.getvalue())["ensemble"]
    if members is None:
        assert ensemble is None
    else:
        assert sorted(ensemble["members"]) == members and ensemble["retrained"] == []
