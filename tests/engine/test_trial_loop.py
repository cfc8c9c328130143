"""The trial loop's edges that no whole study reaches on purpose."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tuner.engine.trial_loop import optimize


def test_a_trial_failed_by_another_worker_meanwhile_ends_with_a_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What another worker's stale-trial check does to a trial whose heartbeat it
    missed: the trial is failed in storage while it still trains here. Optuna then
    refuses to record its value; the worker says so and goes on."""
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return 1.0

    optimize(study, objective, n_trials=1)
    optimize(study, objective, n_trials=1)  # the next trial runs as usual

    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "trial 0 was failed by another worker" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not this"):  # other errors still stop it
        optimize(study, lambda t: (_ for _ in ()).throw(ValueError("not this")), n_trials=1)
