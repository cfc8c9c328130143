"""What a study holds, as plain data: for `tuner status`, `tuner best` and `--json`."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import TrialFailed
from tuner.objectives import PICK_WITHIN
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
                "value": objective_of(t),
                "params": t.params,
                "duration_s": duration,
                "epochs": t.user_attrs.get(records.EPOCHS_RUN),
                "stop_reason": reason,
                "measured": t.user_attrs.get(records.MEASURED),
                "feasible": feasible(t),
            }
        )
    return rows


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The `k` complete trials with the lowest objective, best first."""
    return sorted(completed(study), key=lambda t: float(objective_of(t) or 0.0))[:k]


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
        # --objectives/--constraint/--pick: the champion's measures, the Pareto front
        "best_measured": best.user_attrs.get(records.MEASURED) if best else None,
        "front": front_rows(study) if len(study.directions) > 1 else None,
        "infeasible": sum(1 for t in completed(study) if not feasible(t)),
    }


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The Pareto front as rows: trial number and each objective by name."""
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    return [
        {"trial": t.number, **dict(zip(names, t.values, strict=True))} for t in pareto_front(study)
    ]


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
    return champion(study)


def rank_of(study: optuna.Study, value: float) -> int:
    """How many complete trials of the study have a lower objective than `value`."""
    return sum(1 for t in completed(study) if (v := objective_of(t)) is not None and v < value)


def objective_of(trial: FrozenTrial) -> float | None:
    """A trial's validation objective: its value, the first of a multi-objective
    study's values (`--objectives`)."""
    return trial.values[0] if trial.values else None


def feasible(trial: FrozenTrial) -> bool:
    """Whether the trial meets every `--constraint` (a trial without any does)."""
    return all(e <= 0 for e in trial.user_attrs.get(records.CONSTRAINT_EXCESS, ()))


@dataclass(frozen=True)
class Standing:
    """What the champion rule reads of one trial (or of one being recorded)."""

    number: int
    objective: float
    measured: dict[str, float]
    feasible: bool = True


def standing(trial: FrozenTrial) -> Standing | None:
    value = objective_of(trial)
    if value is None:
        return None
    return Standing(
        trial.number, value, trial.user_attrs.get(records.MEASURED, {}), feasible(trial)
    )


def choose(candidates: list[Standing], pick: str | None) -> Standing | None:
    """The champion among `candidates`: the feasible one with the lowest objective, or
    under `--pick NAME` the feasible one lowest in NAME among those within PICK_WITHIN
    of that objective (ties: the lower objective, then the earlier trial)."""
    ok = [c for c in candidates if c.feasible]
    if not ok:
        return None
    best = min(ok, key=lambda c: (c.objective, c.number))
    if pick is None:
        return best
    near = [c for c in ok if c.objective <= best.objective + PICK_WITHIN * abs(best.objective)]
    return min(near, key=lambda c: (c.measured.get(pick, math.inf), c.objective, c.number))


def picked_by(study: optuna.Study) -> str | None:
    """The study's `--pick` measure, if any."""
    pick: str | None = records.get(study, records.CONFIG, {}).get("pick")
    return pick


def champion(study: optuna.Study) -> FrozenTrial | None:
    """The study's champion: `choose` over its complete trials (for a single-objective
    study without constraints, Optuna's best trial)."""
    by_number = {t.number: t for t in completed(study)}
    chosen = choose([s for t in by_number.values() if (s := standing(t))], picked_by(study))
    return by_number[chosen.number] if chosen else None


def leads(study: optuna.Study, candidate: Standing) -> bool:
    """Whether a trial being recorded becomes the champion, against the complete ones."""
    others = [s for t in completed(study) if (s := standing(t)) and s.number != candidate.number]
    chosen = choose([*others, candidate], picked_by(study))
    return chosen is not None and chosen.number == candidate.number


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The complete feasible trials no other such trial beats in every objective (all
    minimised), by objective; a single-objective study's front is its champion."""
    trials = [t for t in completed(study) if feasible(t) and t.values]
    return sorted(
        (t for t in trials if not any(_dominates(o.values, t.values) for o in trials)),
        key=lambda t: (t.values[0], t.number),
    )


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )
