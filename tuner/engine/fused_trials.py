"""Fused trials in a study (`--fuse K`, JAX only): K trials of one structure asked
of the sampler together and trained as one program (tuner/model/fused.py).

The first trial's configuration comes from the sampler; the others are enqueued
with its structure (every parameter that shapes the graph) and the sampler draws
the rest (the learning rate; TPE's constant liar keeps them apart). Each member
stays its own Optuna trial and MLflow run: its own per-round curve, early
stopping, plateau schedule, pruning (reported to its own trial each round) and,
when it leads the study, its own registered model, saved as an ordinary Keras
model. A member the queue hands out with another structure (a portfolio entry, a
warm start, another worker's group) trains alone, as an unfused trial.

`--fuse auto` times groups of 1, 2, 4, ... members of the first group's structure
on the worker's device (a few steps each, after compiling) and keeps the size
where doubling stopped paying (`measured_size`); the sizes and speeds are a study
record, stated in the summary.

Example::

    group = FusedTrials(study, objective, members=4)
    finished = group.run(share=150.0)  # the Optuna trials it told
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import keras
import numpy as np
import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from tuner.engine.objective import Objective, Scored
from tuner.errors import Opt, TrialFailed
from tuner.model import params as hparams
from tuner.model.batches import as_targets, round_passes
from tuner.model.build import build_model, compile_args, make_optimizer, objective_monitor
from tuner.model.fused import PENALTY_UNIT, AfterRound, FusedGroup, fit_group, mapped, structure
from tuner.model.train import EpochRecorder, evaluate, out_of_memory
from tuner.options import FUSE_AUTO, MAX_FUSE
from tuner.report.console import err
from tuner.study import records
from tuner.study.records import FUSED_GROUP, FUSED_MEMBERS
from tuner.tracking.tracker import EPOCH_PREFIX

Told = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
# --fuse auto keeps a doubling of the group only where it speeds the members' steps
# up by DOUBLING_GAIN: a group trains until its slowest member stops (the other
# lanes idle meanwhile) and K members explore K times fewer structures. Measured
# (B10 at f08ab8f, make tune's co2 study on two CPU cores): a group of 2 stepped
# 1.35x faster than one member and finished 2.01x the trials an hour; 4 stepped
# another 1.13x faster, and finished 1.11x.
DOUBLING_GAIN = 1.25
MEASURE_S = 0.5  # timed steps of each size, after its compilation


def fusable(objective: Objective) -> str:
    """Why this worker's trials cannot be fused ('' where they can)."""
    if keras.backend.backend() != "jax":
        return f"the {keras.backend.backend()} backend trains unfused (fusion needs JAX)"
    if objective.parts()[0][0] is not objective.data:
        return "cross-validated trials train unfused"
    if objective.config.init_from:
        return f"fine-tuned trials ({Opt('init_from')}) train unfused"
    return ""


def fill_group(study: optuna.Study, params: Mapping[str, Any], members: int, group: str) -> None:
    """Enqueue `members - 1` trials with the structure of `params` (a trial the sampler
    drew; the caller tags that one): the sampler draws only what `mapped` leaves free.
    Each is its own trial, tagged with `group`. Optuna's queue is first in, first out
    and shared with the portfolio, warm starts and every worker: whoever fills a group
    asks for its members at once."""
    for _ in range(members - 1):
        study.enqueue_trial(
            dict(structure(params)), user_attrs={FUSED_GROUP: group}, skip_if_exists=False
        )


@dataclass
class _Member:
    trial: optuna.Trial
    params: hparams.TrialParams
    run_id: str
    recorder: EpochRecorder
    logged: list[str] = field(default_factory=list)


class FusedTrials:
    """Ask the study for a group of up to `members` trials, train them, tell them."""

    def __init__(
        self,
        study: optuna.Study,
        objective: Objective,
        *,
        members: int | str,
        told: Told | None = None,
    ) -> None:
        self._study = study
        self._objective = objective
        self._k = members  # a size, or FUSE_AUTO until the first group measured one
        self._told = told or (lambda study, trial: None)
        self._done: set[int] = set()  # trial numbers told

    def run(
        self, *, most: int | None = None, share: float | None = None, left: float | None = None
    ) -> int:
        """One group (of the group size, `most` trials at most); returns how many
        trials it told. The group may train for `share` seconds a member, and `left`
        seconds in all. While the queue holds trials (the portfolio, a warm start,
        what another worker left), they are taken one at a time: a group is filled
        only behind them, so no member waits behind another entry."""
        queued = self._study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        leader = self._study.ask()
        group = str(leader.number)
        first = self._start(leader, group)
        if first is None:
            return 1
        if self._k == FUSE_AUTO and not queued:
            with _heartbeat(self._study, leader):
                self._k = self._measure(first.params)
        k = 1 if queued or self._k == FUSE_AUTO else int(self._k)
        k = min(k, most or k)
        seconds = None if share is None else share * k
        if left is not None:
            seconds = left if seconds is None else min(seconds, left)
        fill_group(self._study, first.params, k, group)
        fused, alone = [first], []
        shape = structure(first.params)
        for _ in range(k - 1):
            trial = self._study.ask()
            if trial.user_attrs.get(FUSED_GROUP) != group:
                alone.append(trial)  # another entry of the queue: it trains unfused
                continue
            member = self._start(trial, group)
            if member is not None and structure(member.params) == shape:
                fused.append(member)
            elif member is not None:
                self._fail(member, "its space drew another structure than its group's")
        with contextlib.ExitStack() as beats:
            for member in fused:
                beats.enter_context(_heartbeat(self._study, member.trial))
            self._train(fused, seconds)
        for trial in alone:
            self._alone(trial)
        return len(fused) + len(alone)

    def _measure(self, params: hparams.TrialParams) -> int:
        """--fuse auto: the group size for this worker, timed on `params`' structure;
        recorded on the study and said on the console."""
        size, speeds = measured_size(self._objective, params, most=MAX_FUSE)
        records.put(
            self._study,
            records.FUSE_MEASURED,
            {"size": size, "member_steps_per_s": {str(k): v for k, v in speeds.items()},
             "structure": params.short_name(), "doubling_gain": DOUBLING_GAIN},
        )  # fmt: skip
        rates = ", ".join(f"{v:,.0f} at {k}" for k, v in speeds.items())
        err.print(
            f"{Opt('fuse', FUSE_AUTO)}: groups of {size} ({params.short_name()}: member-steps/s "
            f"{rates}; a doubling is kept where it gains {DOUBLING_GAIN}x)",
            highlight=False,
        )
        return size

    def _start(self, trial: optuna.Trial, group: str) -> _Member | None:
        """Draw a trial's configuration and open its run; None where it failed there
        (a surplus trial, or a space that raised on this draw), recorded as unfused."""
        try:
            params = self._objective.begin(trial, tags={FUSED_GROUP: group})
        except TrialFailed as e:
            self._fail(
                _Member(trial, hparams.TrialParams({}), self._objective.run_id, EpochRecorder()),
                str(e),
            )
            return None
        except Exception as e:
            reason = f"error: {type(e).__name__}: {e}"
            self._fail(
                _Member(trial, hparams.TrialParams({}), self._objective.run_id, EpochRecorder()),
                reason,
            )
            raise
        trial.set_user_attr(FUSED_GROUP, group)
        return _Member(trial, params, self._objective.run_id, EpochRecorder())

    def _train(self, members: list[_Member], seconds: float | None) -> None:
        objective = self._objective
        config = objective.config
        params = members[0].params
        windows = objective.windows.get(params.window)
        train, val = windows["train"], windows["val"]
        batch = params.batch_size
        for member in members:
            member.trial.set_user_attr(FUSED_MEMBERS, len(members))
            objective.tracker.set_tags(member.run_id, {FUSED_MEMBERS: str(len(members))})
        info = objective.data.info
        started = time.perf_counter()
        try:
            passes = round_passes(train, batch)
            steps = passes * max(1, len(train.x) // batch)
            fused = program(
                objective, [m.params for m in members],
                seeds=[config.seed + m.trial.number for m in members], steps=steps,
            )  # fmt: skip
            results = fit_group(
                fused,
                (train.x, as_targets(train.y)),
                (val.x, as_targets(val.y)),
                batch_size=batch,
                rounds=config.max_epochs,
                patience=config.patience,
                passes=passes,
                plateau=[m.params.get("lr_schedule") == "plateau" for m in members],
                start_round=params.min_rounds(config.max_epochs),
                seed=config.seed + members[0].trial.number,
                seconds=seconds,
                after_round=self._after_round(members),
            )
            train_s = (time.perf_counter() - started) / len(members)
            for i, (member, result) in enumerate(zip(members, results, strict=True)):
                model = None
                if result.stop_reason != "pruned":  # built with its own L2 factor
                    model = fused.member_model(i, partial(build_model, member.params, info))
                self._conclude(member, result, model, train_s)
        except KeyboardInterrupt:
            self._fail_open(members, "interrupted")
            raise
        except TrialFailed as e:  # out of memory: the group's trials fail, the study goes on
            self._fail_open(members, str(e))
        except Exception as e:  # as an unfused trial's error: recorded, then raised
            self._fail_open(members, f"error: {type(e).__name__}: {e}")
            raise
        finally:
            keras.backend.clear_session()

    def _after_round(self, members: list[_Member]) -> AfterRound:
        """What an unfused trial's callbacks do each round, for each member: its curve
        (EpochRecorder, MLflow `epoch/` metrics) and its report to the pruner."""
        tracker = self._objective.tracker
        monitor, factor = objective_monitor(self._objective.data.info)

        def after_round(round_: int, logs: dict[int, dict[str, float]]) -> Sequence[int]:
            pruned = []
            for m, row in logs.items():
                member = members[m]
                shown = {"loss": row["loss"], "val_loss": row["val_loss"]}
                if monitor != "val_loss":
                    shown[monitor] = row["val_data"]
                if np.isfinite(row["learning_rate"]):
                    shown["learning_rate"] = row["learning_rate"]
                member.recorder.history.append(shown)
                metrics = {f"{EPOCH_PREFIX}{k}": v for k, v in shown.items()}
                tracker.log_metrics(member.run_id, metrics, step=round_, buffered=True)
                value = row["val_data"] * factor
                if np.isfinite(value):
                    member.trial.report(value, round_ - 1)
                    if member.trial.should_prune():
                        pruned.append(m)
            return pruned

        return after_round

    def _conclude(self, member: _Member, result: Any, model: Any, train_s: float) -> None:
        objective = self._objective
        if result.stop_reason == "pruned":
            rounds = len(member.recorder.history)
            objective.finish(
                member.trial, member.run_id, "pruned", member.recorder, f"pruned at epoch {rounds}"
            )
            self._tell(member.trial, TrialState.PRUNED)
            return
        if result.stop_reason == "diverged":
            self._fail(member, f"val_loss became {result.history[-1]} (diverged)")
            return
        data = objective.data
        seq_len = member.params.window
        windows = objective.windows.get(seq_len)
        size = member.params.batch_size
        try:
            metrics = evaluate(model, windows["val"], data, batch_size=size)
        except TrialFailed as e:
            self._fail(member, str(e))
            return
        best = result.best_round or len(result.history)
        scored = Scored(metrics, best, result.stop_reason, model)
        value = objective.record(
            member.trial, member.params, member.run_id, member.recorder, scored, train_s=train_s
        )
        self._tell(member.trial, TrialState.COMPLETE, value)

    def _fail(self, member: _Member, reason: str) -> None:
        self._objective.finish(member.trial, member.run_id, "failed", member.recorder, reason)
        self._tell(member.trial, TrialState.FAIL)

    def _fail_open(self, members: list[_Member], reason: str) -> None:
        for member in members:
            if member.trial.number not in self._done:
                self._fail(member, reason)

    def _alone(self, trial: optuna.Trial) -> None:
        """A trial of the queue that is not this group's: trained unfused, as
        `study.optimize` would (failures and pruning recorded on it)."""
        try:
            with _heartbeat(self._study, trial):
                value = self._objective(trial)
        except optuna.TrialPruned:
            self._tell(trial, TrialState.PRUNED)
        except TrialFailed:
            self._tell(trial, TrialState.FAIL)
        except BaseException:
            self._tell(trial, TrialState.FAIL)
            raise
        else:
            self._tell(trial, TrialState.COMPLETE, value)

    def _tell(
        self, trial: optuna.Trial, state: TrialState, value: float | tuple[float, ...] | None = None
    ) -> None:
        done = state == TrialState.COMPLETE
        frozen = self._study.tell(
            trial, value if done else None, state=state, skip_if_finished=True
        )
        self._done.add(trial.number)
        self._told(self._study, frozen)


def program(
    objective: Objective, members: Sequence[hparams.TrialParams], *, seeds: Sequence[int],
    steps: int,
) -> FusedGroup:  # fmt: skip
    """The members' program: their shared model and optimizer, their own seeds and
    (`mapped`) their own learning rates and weight penalties. `steps`: optimizer steps
    a round (a cosine schedule's length)."""
    config, info = objective.config, objective.data.info
    params = members[0]
    free = mapped(params)
    own_rates = "learning_rate" in params and "learning_rate" in free
    shared = {**dict(params), "l2": PENALTY_UNIT} if "l2" in free else dict(params)
    return FusedGroup(
        lambda: build_model(shared, info),
        lambda: make_optimizer(params, steps_per_epoch=steps, epochs=config.max_epochs),
        compile_args(info)["loss"],
        seeds=seeds,
        learning_rates=[float(m["learning_rate"]) for m in members] if own_rates else None,
        penalties=[m.l2 for m in members] if "l2" in free else None,
    )


def measured_size(
    objective: Objective, params: hparams.TrialParams, *, most: int
) -> tuple[int, dict[int, float]]:
    """--fuse auto: member-steps per second of groups of 1, 2, 4, ... (at most `most`)
    members of `params`' structure on this worker's device (the training windows'
    first batch, MEASURE_S of steps after compiling), doubling while a doubling gains
    DOUBLING_GAIN; the size kept and every size's speed."""
    train = objective.windows.get(params.window)["train"]
    batch = max(1, min(params.batch_size, len(train.x)))
    x, y = train.x[:batch], as_targets(train.y[:batch])
    speeds: dict[int, float] = {}
    k = 1
    while k <= most:
        try:
            group = program(objective, [params] * k, seeds=list(range(k)), steps=1)
            np.asarray(group.train_step(x, y))  # compiles
            done, started = 0, time.perf_counter()
            while done < 3 or time.perf_counter() - started < MEASURE_S:
                loss = [group.train_step(x, y) for _ in range(3)][-1]
                np.asarray(loss)  # waits for the steps (they run queued)
                done += 3
            speeds[k] = k * done / (time.perf_counter() - started)
        except Exception as e:  # out of the device's memory: the last size that fitted
            if out_of_memory(e) is None:
                raise
            break
        finally:
            keras.backend.clear_session()
        if k > 1 and speeds[k] < DOUBLING_GAIN * speeds[k // 2]:
            return k // 2, speeds
        k *= 2
    return max(speeds, default=1), speeds


def _heartbeat(study: optuna.Study, trial: optuna.Trial) -> Any:
    """The running trial's heartbeat, as `study.optimize` keeps it (where the storage
    has heartbeats: a worker that dies mid-group has its trials retried)."""
    return get_heartbeat_thread(trial._trial_id, study._storage)  # Optuna's own use
