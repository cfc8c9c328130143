"""What a study holds, as plain data: for `tuner status`, `tuner best` and `--json`."""

from __future__ import annotations

import statistics
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import TrialFailed
from tuner.study import records

_STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # trials that count towards --trials


def finished(study: optuna.Study) -> int:
    """Trials that count towards `--trials`: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=DONE_STATES))


def claimed(study: optuna.Study) -> int:
    """Finished trials plus those running now (so several workers do not overshoot)."""
    return len(study.get_trials(deepcopy=False, states=(*DONE_STATES, TrialState.RUNNING)))


def refuse_surplus(trial: optuna.Trial, wanted: int) -> None:
    """Fail, before anything is trained or recorded, a trial asked for at the same
    moment as the last one wanted: workers check the count before they ask, so two
    can both see one trial missing. The lower trial numbers keep their claim."""
    ahead = [
        t
        for t in trial.study.get_trials(deepcopy=False, states=(*DONE_STATES, TrialState.RUNNING))
        if t.number < trial.number
    ]
    if len(ahead) >= wanted:
        raise TrialFailed(
            f"not run: {wanted} trials were already claimed when it started "
            "(another worker asked at the same moment)"
        )


def state_name(trial: FrozenTrial) -> str:
    return _STATE_NAMES[trial.state]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, params, duration, epochs run."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    # A dead worker's trial is failed by the heartbeat check, which cannot give it a
    # reason (a finished trial takes no attribute); its retry names it.
    retried = {
        t.system_attrs["failed_trial"]: t.number for t in trials if "failed_trial" in t.system_attrs
    }
    for t in trials:
        duration = t.duration.total_seconds() if t.duration else None
        reason = t.user_attrs.get(records.STOP_REASON) or t.user_attrs.get(records.FAIL_REASON)
        if reason is None and t.number in retried:
            reason = f"worker died (no heartbeat); retried as trial {retried[t.number]}"
        rows.append(
            {
                "number": t.number,
                "state": state_name(t),
                "value": t.value,
                "params": t.params,
                "duration_s": duration,
                "epochs": t.user_attrs.get(records.EPOCHS_RUN),
                "stop_reason": reason,
            }
        )
    return rows


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The `k` complete trials with the lowest objective, best first."""
    return sorted(completed(study), key=lambda t: float(t.value or 0.0))[:k]


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def summarize(study: optuna.Study, *, storage: str, tracking_uri: str) -> dict[str, Any]:
    """The summary object printed by `--json` and `tuner best --json`."""
    counts = {s: 0 for s in ("complete", "pruned", "failed", "running", "waiting")}
    for t in study.get_trials(deepcopy=False):
        counts[state_name(t)] += 1
    best = _best(study)
    kept = records.study_records(study)  # one read of the storage
    return {
        "study": study.study_name,
        "storage": storage,
        "tracking_uri": tracking_uri,
        "mlflow_ui": kept.get(records.MLFLOW_UI),  # the runs table, objective shown
        "n_complete": counts["complete"],
        "n_pruned": counts["pruned"],
        "n_failed": counts["failed"],
        "objective": kept.get(records.OBJECTIVE, "validation MSE (standardised)"),
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "best_val": best.user_attrs.get(records.VAL_METRICS) if best else None,
        "best_test": test_metrics(study, best) if best else None,
        "best_epoch": best.user_attrs.get(records.BEST_EPOCH) if best else None,
        "fold_spread": fold_spread(best) if best else None,
        "baselines": kept.get(records.BASELINES, {}),
        "dataset": kept.get(records.FINGERPRINT, {}),
        # --ensemble K: members, validation (and, as champion, test) metrics
        "ensemble": kept.get(records.ENSEMBLE),
        "fused": fused_counts(study),  # --fuse K: trials trained in groups, and groups
        "fuse_measured": kept.get(records.FUSE_MEASURED),  # --fuse auto: sizes timed, kept
    }


def fused_counts(study: optuna.Study) -> dict[str, int] | None:
    """How many trials trained fused (`--fuse`), in how many groups; None for none."""
    groups = [
        t.user_attrs.get(records.FUSED_GROUP)
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(records.FUSED_MEMBERS, 1) > 1
    ]
    return {"trials": len(groups), "groups": len(set(groups))} if groups else None


def fold_spread(trial: FrozenTrial) -> dict[str, float] | None:
    """A cross-validated trial's objective over its folds (lowest, highest, standard
    deviation): how far one held-out part's score strays from the mean, so about
    how far the test score may stray from validation. None without folds."""
    values = trial.user_attrs.get(records.FOLD_VALUES)
    if not values:
        return None
    spread = statistics.pstdev(values)
    return {"low": min(values), "high": max(values), "std": spread, "folds": len(values)}


def test_metrics(study: optuna.Study, trial: FrozenTrial) -> dict[str, float] | None:
    """The trial's test metrics: recorded for the study's best trial only, once the
    trials have ended (older studies kept them on each trial that became best)."""
    recorded = records.get(study, records.TEST_METRICS, {})
    found = recorded.get(str(trial.number), trial.user_attrs.get(records.TEST_METRICS))
    return dict(found) if found is not None else None


def record_test_metrics(study: optuna.Study, trial: FrozenTrial, metrics: dict[str, float]) -> None:
    """Store the best trial's test metrics with the study (a finished trial is read-only)."""
    recorded = dict(records.get(study, records.TEST_METRICS, {}))
    recorded[str(trial.number)] = metrics
    records.put(study, records.TEST_METRICS, recorded)


def epochs_spent(study: optuna.Study) -> int:
    """Epochs trained by all of the study's trials so far (pruned and failed included)."""
    return sum(
        int(t.user_attrs.get(records.EPOCHS_RUN, 0)) for t in study.get_trials(deepcopy=False)
    )


def _best(study: optuna.Study) -> FrozenTrial | None:
    return study.best_trial if completed(study) else None


def rank_of(study: optuna.Study, value: float) -> int:
    """How many complete trials of the study have a lower objective than `value`."""
    return sum(1 for t in completed(study) if t.value is not None and t.value < value)
