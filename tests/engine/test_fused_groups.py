"""Filling a fused group: the sampler draws the first member, the others share its
structure and draw what the group maps (a real Optuna study, the tuner's TPE)."""

from __future__ import annotations

from typing import Any

import optuna

from tuner.engine.fused_trials import fill_group
from tuner.model.fused import structure
from tuner.study.records import FUSED_GROUP


def _sample(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "cell": trial.suggest_categorical("cell", ["lstm", "gru"]),
        "units_0": trial.suggest_int("units_0", 8, 64, step=8),
        "lr_schedule": trial.suggest_categorical("lr_schedule", ["constant", "cosine"]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "l2": trial.suggest_float("l2", 1e-7, 1e-3, log=True),
    }


def _group(schedule: str) -> list[dict[str, Any]]:
    sampler = optuna.samplers.TPESampler(
        seed=0, n_startup_trials=8, multivariate=True, group=True, constant_liar=True
    )  # the tuner's (tuner/study/setup.py)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"lr_schedule": schedule})
    first = _sample(study.ask())
    fill_group(study, first, 4, group="g0")
    members = [study.ask() for _ in range(3)]
    assert all(t.user_attrs[FUSED_GROUP] == "g0" for t in members)
    return [first, *(_sample(t) for t in members)]


def test_members_share_the_structure_and_draw_their_own_learning_rates() -> None:
    group = _group("constant")
    assert len({structure(p) for p in group}) == 1
    assert {p["cell"] for p in group} == {group[0]["cell"]}
    assert len({p["learning_rate"] for p in group}) == 4  # four different rates
    assert len({p["l2"] for p in group}) == 4  # and weight penalties (data, not the graph)


def test_under_a_cosine_schedule_the_rate_is_part_of_the_structure() -> None:
    group = _group("cosine")  # the schedule holds its starting rate as a constant
    assert len({p["learning_rate"] for p in group}) == 1
