"""Grid search: every point of a discrete space run once (`--sampler grid`).

The grid is the space's own decisions (`tuner.space.grid_points`), so conditional
parameters appear only where they are active. A trial takes a point that no
complete, pruned, running or waiting trial holds; a failed point is free again,
so a resumed or retried study finishes only the missing points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

GRID_POINT = "grid_point"  # the trial's system attribute: its index in the grid
_HELD = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class GridSampler(optuna.samplers.BaseSampler):
    """Each trial takes one free point of `points` (chosen at random among the free
    ones, so workers starting together rarely collide)."""

    def __init__(self, points: Sequence[dict[str, Any]], *, seed: int) -> None:
        self._points = list(points)
        self._rng = np.random.default_rng(seed)
        self._assigned: dict[int, int] = {}  # trial id -> point, in this process
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # enqueued with its values
            return
        held = free_points(study, len(self._points))
        point = int(self._rng.choice(held)) if held else int(self._rng.integers(len(self._points)))
        self._assigned[trial._trial_id] = point
        study._storage.set_trial_system_attr(trial._trial_id, GRID_POINT, point)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        point = self._assigned.get(trial._trial_id)
        if point is None or param_name not in self._points[point]:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        return self._points[point][param_name]

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._assigned.pop(trial._trial_id, None)


def free_points(study: optuna.Study, size: int) -> list[int]:
    """Grid points no complete, pruned, running or waiting trial holds."""
    held = {t.system_attrs.get(GRID_POINT) for t in study.get_trials(deepcopy=False, states=_HELD)}
    return [i for i in range(size) if i not in held]
