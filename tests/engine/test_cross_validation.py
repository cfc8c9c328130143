"""Cross-validation (`--cv K`): folds stay out of the test split, each fold is
logged, pruning reaches into any fold, and only the best trial sees the test set."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SPACES, Stores
from tuner.cli.main import main
from tuner.config import CV_STEPS, TuneConfig
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.data.sequences import SequenceData
from tuner.data.series import SeriesData
from tuner.data.spec import rolling_origin
from tuner.data.text import TextData
from tuner.engine.objective import Objective
from tuner.errors import InputError
from tuner.space import load_space
from tuner.study import records
from tuner.tracking.tracker import Tracker


def test_rolling_origin_folds_expand_and_end_at_the_validation_border() -> None:
    assert rolling_origin(100, 3) == [(25, 50), (50, 75), (75, 100)]


def test_forecasting_folds_never_touch_the_test_rows() -> None:
    data = load_dataset(resolve_dataset("co2", cv=3))
    assert isinstance(data, SeriesData)
    _, val_end, _ = data.borders
    folds = data.folds()
    assert len(folds) == 3 and data.info.cv == 3
    assert folds[-1].borders[1] == val_end  # the last fold is scored up to the border
    for fold in folds:
        assert isinstance(fold, SeriesData)
        train_end, fold_val_end, fold_test_end = fold.borders
        assert fold_val_end <= val_end and fold_test_end == fold_val_end
        windows = fold.windows(52)
        assert len(windows["test"].x) == 0
        # The last validation target row of the fold is fold_val_end - 1 < val_end.
        assert len(windows["val"].y) == fold_val_end - train_end - data.spec.horizon + 1
        # Each fold's scaler is fit on its own training rows.
        train = fold.scaled[:train_end]
        assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-3


def test_classification_folds_partition_train_and_validation_only() -> None:
    data = load_dataset(resolve_dataset("italy_power_demand"))
    assert isinstance(data, SequenceData)
    assert data.info.cv == 5  # 67 training sequences: cross-validated by default
    test = set(data.parts["test"].tolist())
    assert len(test) == 1029  # the archive's whole test set
    seen: list[int] = []
    for fold in data.folds():
        assert isinstance(fold, SequenceData)
        assert not test & set(fold.parts["train"].tolist())
        assert not test & set(fold.parts["val"].tolist())
        assert len(fold.parts["test"]) == 0
        seen += fold.parts["val"].tolist()
    pool = np.concatenate([data.parts["train"], data.parts["val"]])
    assert sorted(seen) == sorted(pool.tolist())  # every sequence validated once


@pytest.mark.parametrize(("steps", "folds"), [(400, 5), (600, 0)])
def test_small_sets_of_long_sequences_are_not_cross_validated_by_default(
    tmp_path: Path, steps: int, folds: int
) -> None:
    """100 training sequences: 40,000 steps in all are cross-validated, 60,000
    (five trainings of a long-series model) are selected on the validation split."""
    rng = np.random.default_rng(0)
    path = tmp_path / "long.npz"
    np.savez(path, X=rng.normal(size=(150, steps, 1)).astype(np.float32),
             y=np.repeat(["a", "b"], 75), split=np.repeat([0, 1, 2], [80, 20, 50]))  # fmt: skip
    data = load_dataset(resolve_dataset(str(path)))
    assert data.info.cv == folds == len(data.folds())
    assert CV_STEPS == 50_000
    explicit = load_dataset(resolve_dataset(str(path), cv=3))
    assert explicit.info.cv == 3  # --cv always decides


def test_text_folds_are_contiguous_blocks_before_the_test_text() -> None:
    data = load_dataset(resolve_dataset("alice", cv=2))
    assert isinstance(data, TextData)
    for fold in data.folds():
        assert isinstance(fold, TextData)
        assert fold.borders[1] <= data.borders[1] and fold.borders[2] == fold.borders[1]
        assert len(fold.windows(64)["test"].x) == 0


@pytest.mark.slow
def test_bad_fold_counts_exit_2_with_one_line(stores: Stores) -> None:
    with pytest.raises(InputError, match="cv must be 0"):
        resolve_dataset("co2", cv=1)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["tune", "--dataset", "japanese_vowels", "--cv", "60", *stores.args()])
    assert code == 2 and "cv must be 0" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1
    assert not Path(stores.root / "optuna.db").exists()


@pytest.mark.slow
def test_cv_study_logs_each_fold_and_tests_only_the_best_trial(stores: Stores) -> None:
    out = io.StringIO()
    argv = [
        "tune", "--dataset", "co2", "--space", str(SPACES / "tiny.py"), "--cv", "2",
        "--trials", "3", "--max-epochs", "2", "--patience", "2", "--pruner", "none",
        *stores.args(), "--json",
    ]  # fmt: skip
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    summary = json.loads(out.getvalue())
    study = optuna.load_study(study_name="co2", storage=stores.storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    client = MlflowClient(stores.tracking)
    for trial in complete:
        folds = trial.user_attrs["fold_values"]
        assert trial.value == pytest.approx(np.mean(folds))
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.metrics["fold0_val_mse"] == pytest.approx(folds[0])
        assert run.data.metrics["fold1_val_mse"] == pytest.approx(folds[1])
        # The test split is scored for the trial reported best, and for no other.
        assert ("test_mse" in run.data.metrics) == (trial.number == study.best_trial.number)
    assert list(records.get(study, records.TEST_METRICS)) == [str(study.best_trial.number)]
    assert (
        summary["best_test"] == records.get(study, records.TEST_METRICS)[str(summary["best_trial"])]
    )
    assert summary["best_trial"] == study.best_trial.number
    folds = study.best_trial.user_attrs["fold_values"]
    assert summary["fold_spread"] == {
        "low": min(folds), "high": max(folds), "std": pytest.approx(np.std(folds)), "folds": 2
    }  # fmt: skip


class _PruneFromStep(optuna.pruners.BasePruner):
    def __init__(self, step: int) -> None:
        self._step = step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return (trial.last_step or 0) >= self._step


def test_cv_trial_can_be_pruned_inside_its_second_fold(tmp_path: Path) -> None:
    config = TuneConfig(dataset="co2", max_epochs=2, patience=2, cv=2)
    data = load_dataset(resolve_dataset("co2", cv=2))
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "cv")
    tracker.start_parent("cv-test", {}, tags={})
    objective = Objective(
        space=load_space(str(SPACES / "tiny.py")), data=data, config=config, tracker=tracker
    )
    # Fold 1 reports steps 0-1 (its two rounds), fold 2 from step 2 = max_epochs.
    study = optuna.create_study(pruner=_PruneFromStep(2))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert records.TEST_METRICS not in records.study_records(study)
