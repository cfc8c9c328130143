"""Several worker processes on one study: `--workers N` and `tuner worker`."""

from __future__ import annotations

import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import Stores, start_tuner, tiny_tune_args
from tuner.errors import TrialFailed
from tuner.study import records
from tuner.study.setup import sampler_seed
from tuner.study.storage import open_storage
from tuner.study.summary import refuse_surplus

pytestmark = pytest.mark.slow


def _check_study(stores: Stores, name: str, *, trials: int, workers: int) -> list:
    study = optuna.load_study(study_name=name, storage=open_storage(stores.storage))
    states = [t.state for t in study.trials]
    finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == trials, states  # no overshoot, with `workers` asking at once
    assert TrialState.RUNNING not in states
    # A trial asked beside the last one wanted is failed before it trains or records.
    surplus = {
        t.number for t in study.trials if t.user_attrs.get("fail_reason", "")[:8] == "not run:"
    }
    assert len(surplus) <= workers - 1
    client = MlflowClient(stores.tracking)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    numbers = [r.data.tags["trial_number"] for r in children]
    ran = [str(t.number) for t in study.trials if t.number not in surplus]
    assert sorted(numbers, key=int) == ran, "one run per trial that ran"
    assert all(r.info.status != "RUNNING" for r in runs)
    return runs


def test_workers_opening_the_study_a_trial_apart_draw_apart() -> None:
    """Slot 1 having seen one trial fewer than slot 0 once gave both the same seed (the
    sum 42 + 1 + 0 == 42 + 0 + 1), so both drew the same configurations."""
    seeds = {sampler_seed(42, before, slot) for before in range(20) for slot in range(8)}
    assert len(seeds) == 20 * 8
    assert sampler_seed(42, 0, 0) == 42  # one worker on a new study: the study's seed
    assert sampler_seed(42, 3, 1) == sampler_seed(42, 3, 1)  # a rerun draws the same


def test_a_trial_asked_beside_the_last_one_wanted_is_not_run(stores: Stores) -> None:
    """Two workers both saw one trial missing and both asked: the later number yields."""
    study = optuna.create_study(study_name="race", storage=stores.storage)
    for _ in range(2):
        study.tell(study.ask(), 1.0)
    last, extra = study.ask(), study.ask()  # two workers' asks for the third and last
    refuse_surplus(last, 3)  # the lower number keeps its claim
    with pytest.raises(TrialFailed, match=r"not run: 3 trials were already claimed"):
        refuse_surplus(extra, 3)
    study.tell(last, 2.0)
    study.tell(extra, state=TrialState.FAIL)
    spare = study.ask()  # a later trial, once the others settled: still refused
    with pytest.raises(TrialFailed):
        refuse_surplus(spare, 3)
    refuse_surplus(spare, 4)  # a larger --trials on the rerun: it runs


def test_two_local_workers_share_the_embedded_store(stores: Stores) -> None:
    proc = start_tuner(*tiny_tune_args(stores, study="two", trials=6), "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "database is locked" not in err
    assert "Traceback" not in err
    runs = _check_study(stores, "two", trials=6, workers=2)
    study = optuna.load_study(study_name="two", storage=stores.storage)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params), "two workers drew the same configuration"
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 1


def test_worker_joins_a_study_started_by_tune(stores: Stores) -> None:
    tune = start_tuner(*tiny_tune_args(stores, study="joined", trials=6))
    deadline = time.monotonic() + 120
    while True:
        try:
            optuna.load_study(study_name="joined", storage=stores.storage)
            break
        except KeyError:
            assert tune.poll() is None and time.monotonic() < deadline, tune.communicate()
            time.sleep(0.2)
    worker = start_tuner("worker", "--study", "joined", "--storage", stores.storage)
    _, worker_err = worker.communicate(timeout=600)
    _, tune_err = tune.communicate(timeout=600)
    assert worker.returncode == 0, worker_err
    assert tune.returncode == 0, tune_err
    runs = _check_study(stores, "joined", trials=6, workers=2)
    roles = sorted(r.data.tags["role"] for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert roles == ["tune", "worker"]
    study = optuna.load_study(study_name="joined", storage=stores.storage)
    assert records.get(study, records.CONFIG)["max_epochs"] == 3


def test_worker_on_an_unknown_study_exits_2(stores: Stores) -> None:
    optuna.create_study(study_name="other", storage=stores.storage)  # the storage exists
    proc = start_tuner("worker", "--study", "nope", "--storage", stores.storage)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "no study named 'nope'" in err.strip().splitlines()[-1]
