"""Every built-in dataset runs a tiny study of its task with the task's default
search space, and reports its metric and baselines in MLflow and `tuner best`."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Finished
from tuner.cli.main import main
from tuner.data.catalog import builtin_datasets

# What each task's summary must hold: the selection metric, every metric, the baselines.
EXPECTED = {
    "forecasting": ("mse", {"mse", "mae", "mse_orig", "mae_orig"}, {"persistence_test"}),
    "classification": ("log_loss", {"log_loss", "accuracy", "macro_f1"}, {"majority_test"}),
    "char_lm": ("bpc", {"bpc", "accuracy"}, {"unigram_test"}),
}


def _cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def test_every_task_has_a_built_in_dataset() -> None:
    tasks = {spec.task for spec in builtin_datasets().values()}
    assert tasks == set(EXPECTED)
    kinds = {(s.task, bool(s.covariates)) for s in builtin_datasets().values()}
    assert ("forecasting", True) in kinds and ("forecasting", False) in kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(builtin_datasets()))
def test_tiny_study_on_each_built_in_dataset(
    name: str, finished_studies: Callable[[str], Finished]
) -> None:
    task = builtin_datasets()[name].task
    metric, metrics, baselines = EXPECTED[task]
    study = finished_studies(name)  # tuner tune --dataset NAME --trials 3 --max-epochs 2
    stores, summary = study.stores, study.summary
    assert summary["n_complete"] + summary["n_pruned"] == 3
    assert summary["objective"].startswith("validation")
    assert set(summary["best_val"]) == metrics and set(summary["best_test"]) == metrics
    assert baselines <= set(summary["baselines"])
    assert summary["dataset"]["task"] == task

    client = MlflowClient(stores.tracking)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("role") == "tune")
    baseline = sorted(baselines)[0]
    assert parent.data.metrics[f"baseline_{baseline}_{metric}"] == pytest.approx(
        summary["baselines"][baseline][metric]
    )
    assert parent.data.metrics[f"best_test_{metric}"] == pytest.approx(summary["best_test"][metric])

    code, text = _cli(["best", "--study", name, "--storage", stores.storage, "--json"])
    assert code == 0
    best = json.loads(text)
    assert best["best_val"][metric] == pytest.approx(summary["best_val"][metric])
    assert best["baselines"] == summary["baselines"]


@pytest.mark.slow
def test_character_pruning_reports_bits_per_character(
    finished_studies: Callable[[str], Finished],
) -> None:
    """What the pruner (and `tuner status`, the dashboard) sees per round is the
    objective's unit, bits per character, not the loss in nats (1.44 times more)."""
    import optuna

    stores = finished_studies("alice").stores
    study = optuna.load_study(study_name="alice", storage=stores.storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for trial in complete:
        reported = min(trial.intermediate_values.values())
        # Early stopping restores the best epoch; a round ends on some epoch.
        assert trial.value <= reported + 1e-3
        assert reported < trial.value * 1.1
