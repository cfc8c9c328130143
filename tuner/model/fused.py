"""Several trials of one structure trained as one compiled program (JAX only).

A small LSTM's step is far too small to fill a GPU, and on two CPU cores it leaves
the vector units half idle: K trials that build the same graph (cell, layers,
units, window, batch size, dropout, optimizer kind, clipping) train faster as one
program than one after the other (Wang et al., MLSys 2021, "Horizontally Fused
Training Array"). The model is built K times, once per member seed, and its
variables are stacked along a new leading axis; one train step, Keras'
`stateless_call` and the optimizer's `stateless_apply`, is mapped over the
members with `jax.vmap` and compiled once. What does not change the graph is data
mapped with the members: each member's learning rate (an optimizer variable, so
a plateau schedule lowers one member's rate alone), its weight penalty (L2: the
group's model penalises its kernels by 1.0 and each member's factor scales the
layers' losses, which are linear in it) and whether it still trains (a member
that stopped keeps its weights; the group goes on for the others). Dropout rates
and gradient clipping stay part of the structure: Keras' Dropout layers,
recurrent cells and optimizers hold them as Python numbers in the graph, and
making them data would need layers of our own, which the saved model would
carry (it would no longer load in plain Keras).

`member_model(i)` gives member i as an ordinary Keras model (its own weights in a
model built like the others), so a fused trial saves, exports and serves as an
unfused one does.

Example::

    group = FusedGroup(build, optimizer, loss, seeds=[1, 2, 3, 4], learning_rates=lrs)
    for x, y in batches:
        losses = group.train_step(x, y)
    val = group.evaluate(x_val, y_val)  # one loss per member
    best = group.member_model(int(np.argmin(val)))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np


def mapped(params: Mapping[str, Any]) -> frozenset[str]:
    """The parameters a group's members may differ in: data mapped with the members,
    not part of the graph. The learning rate is an optimizer variable, except under a
    cosine schedule, which holds its starting rate as a constant; the weight penalty
    (`l2`) where the space tunes it (a space without it builds no penalty at all)."""
    rate = set() if params.get("lr_schedule") == "cosine" else {"learning_rate"}
    return frozenset(rate | ({"l2"} if "l2" in params else set()))


PENALTY_UNIT = 1.0  # the L2 factor a group's model is built with where `l2` is mapped


def structure(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What every member of a group shares: the parameters that shape the program."""
    free = mapped(params)
    return tuple(sorted((k, v) for k, v in params.items() if k not in free))


class FusedGroup:
    """K members of one structure: stacked variables, one vmapped, jitted step."""

    def __init__(
        self,
        build: Callable[[], keras.Model],
        optimizer: Callable[[], keras.optimizers.Optimizer],
        loss: Callable[[Any, Any], Any],
        *,
        seeds: Sequence[int],
        learning_rates: Sequence[float] | None = None,
        penalties: Sequence[float] | None = None,
    ) -> None:
        """`penalties`: each member's L2 factor, where `build` penalises every kernel it
        penalises by PENALTY_UNIT (None: the model's own penalty, for every member)."""
        import jax
        import jax.numpy as jnp

        if keras.backend.backend() != "jax":
            raise RuntimeError("fused trials need the JAX backend (KERAS_BACKEND=jax)")
        self.k = len(seeds)
        models = []
        for seed in seeds:  # each member initialised from its own seed (global seeds set)
            keras.utils.set_random_seed(int(seed))
            models.append(build())
        self._model = models[0]
        self._loss = loss
        self._optimizer = optimizer()
        self._optimizer.build(self._model.trainable_variables)
        stack = _stack
        self.trainable = stack([[v.value for v in m.trainable_variables] for m in models])
        self.non_trainable = stack([[v.value for v in m.non_trainable_variables] for m in models])
        opt_values = [v.value for v in self._optimizer.variables]
        self.opt_state = stack([opt_values] * self.k)
        if learning_rates is not None:
            self.set_learning_rates(learning_rates)
        scale = np.ones(self.k) if penalties is None else np.asarray(penalties) / PENALTY_UNIT
        self.penalties = jnp.asarray(scale, dtype="float32")
        self.active = np.ones(self.k, dtype=bool)
        self.lanes = np.arange(self.k)  # the members the step computes (compact())
        self._step = jax.vmap(self._one_step, in_axes=(0, 0, 0, 0, 0, None, None))
        self._train = jax.jit(self._step)
        self._train_lanes = jax.jit(self._lanes_step)
        self._eval = jax.jit(jax.vmap(self._one_loss, in_axes=(0, 0, 0, None, None)))

    # -- the member's step, mapped over the group ---------------------------------

    def _one_loss(
        self, trainable: list[Any], non_trainable: list[Any], penalty: Any, x: Any, y: Any
    ) -> tuple[Any, Any]:
        """The data's loss and the layers' (L2): their sum is Keras' `val_loss`."""
        y_pred, _, losses = self._model.stateless_call(
            trainable, non_trainable, x, training=False, return_losses=True
        )
        return keras.ops.mean(self._loss(y, y_pred)), penalty * sum(losses) + keras.ops.zeros(())

    def _one_step(
        self, trainable: list[Any], non_trainable: list[Any], opt_state: list[Any], active: Any,
        penalty: Any, x: Any, y: Any,
    ) -> tuple[list[Any], list[Any], list[Any], Any]:  # fmt: skip
        import jax
        import jax.numpy as jnp

        def loss_of(tv: list[Any], ntv: list[Any]) -> tuple[Any, list[Any]]:
            y_pred, ntv, losses = self._model.stateless_call(
                tv, ntv, x, training=True, return_losses=True
            )
            return jnp.mean(self._loss(y, y_pred)) + penalty * sum(losses), ntv

        (loss, new_ntv), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable, non_trainable)
        new_tv, new_opt = self._optimizer.stateless_apply(opt_state, grads, trainable)

        def keep(new: list[Any], old: list[Any]) -> list[Any]:  # a stopped member stays
            return [jnp.where(active, n, o) for n, o in zip(new, old, strict=True)]

        return (
            keep(new_tv, trainable),
            keep(new_ntv, non_trainable),
            keep(new_opt, opt_state),
            loss,
        )

    def _lanes_step(
        self, trainable: list[Any], non_trainable: list[Any], opt_state: list[Any], active: Any,
        penalties: Any, lanes: Any, x: Any, y: Any,
    ) -> tuple[list[Any], list[Any], list[Any], Any]:  # fmt: skip
        """The step of the members in `lanes` only (the others stopped): their rows
        taken out, stepped, and put back; the others' losses read 0."""
        import jax.numpy as jnp

        def take(values: list[Any]) -> list[Any]:
            return [v[lanes] for v in values]

        def put(full: list[Any], part: list[Any]) -> list[Any]:
            return [f.at[lanes].set(p) for f, p in zip(full, part, strict=True)]

        tv, ntv, opt, loss = self._step(
            take(trainable), take(non_trainable), take(opt_state), active[lanes],
            penalties[lanes], x, y,
        )  # fmt: skip
        losses = jnp.zeros((self.k,), loss.dtype).at[lanes].set(loss)
        return put(trainable, tv), put(non_trainable, ntv), put(opt_state, opt), losses

    # -- the group's interface ----------------------------------------------------

    def train_step(self, x: Any, y: Any) -> Any:
        """One optimizer step of every active member on the batch (x, y); their losses
        (a device array: reading it waits for the step, so the loop does not)."""
        # A copy of `active`: the step runs queued, and JAX may read a NumPy array in
        # place on the CPU, so a member stopped after this call could stop it too early.
        active = self.active.copy()
        state = (self.trainable, self.non_trainable, self.opt_state, active, self.penalties)
        if len(self.lanes) == self.k:
            self.trainable, self.non_trainable, self.opt_state, loss = self._train(*state, x, y)
        else:
            self.trainable, self.non_trainable, self.opt_state, loss = self._train_lanes(
                *state, self.lanes, x, y
            )
        return loss

    def compact(self) -> bool:
        """Compute the active members' steps alone from now on, once no more than half
        of the members computed are active: a stopped member's share of a step would
        otherwise go on costing (one compilation for the narrower step). Whether it
        narrowed the step."""
        active = np.flatnonzero(self.active)
        if len(active) == 0 or len(active) > len(self.lanes) // 2:
            return False
        self.lanes = active
        return True

    def evaluate(self, x: Any, y: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Each member's loss on (x, y) as Keras' `val_loss` (no dropout, L2 added):
        the mean over batches of `batch_size`, weighted by their sizes. The data's
        part alone (without L2) is kept in `data_losses`."""
        n = len(x)
        size = batch_size or n
        data, penalty = np.zeros(self.k), np.zeros(self.k)
        for start in range(0, n, size):
            part = slice(start, start + size)
            d, p = self._eval(self.trainable, self.non_trainable, self.penalties, x[part], y[part])
            data += np.asarray(d, dtype=float) * len(x[part])
            penalty = np.asarray(p, dtype=float)
        self.data_losses = data / n
        return self.data_losses + penalty

    def snapshot(self) -> tuple[list[Any], list[Any]]:
        """Every member's weights as they are now (to restore the best round's)."""
        return list(self.trainable), list(self.non_trainable)

    def keep_where(self, members: np.ndarray, saved: tuple[list[Any], list[Any]]) -> tuple[
        list[Any], list[Any]
    ]:  # fmt: skip
        """`saved` with the weights of `members` (a boolean per member) replaced by
        theirs now: the best rounds' weights, kept up to date."""
        import jax.numpy as jnp

        def pick(now: list[Any], old: list[Any]) -> list[Any]:
            out = []
            for n, o in zip(now, old, strict=True):
                mask = jnp.asarray(members).reshape((self.k,) + (1,) * (n.ndim - 1))
                out.append(jnp.where(mask, n, o))
            return out

        return pick(self.trainable, saved[0]), pick(self.non_trainable, saved[1])

    def restore(self, saved: tuple[list[Any], list[Any]]) -> None:
        """Every member back to the weights in `saved`."""
        self.trainable, self.non_trainable = list(saved[0]), list(saved[1])

    def stop(self, member: int) -> None:
        """Member `member` trains no more (its weights and optimizer state stay)."""
        self.active[member] = False

    def _learning_rate_slot(self) -> int:
        for i, variable in enumerate(self._optimizer.variables):
            if variable.path.endswith("learning_rate"):
                return i
        raise RuntimeError("this optimizer's learning rate is a schedule, not a variable")

    @property
    def rate_is_variable(self) -> bool:
        """Whether each member's learning rate is data (not a schedule in the graph)."""
        return any(v.path.endswith("learning_rate") for v in self._optimizer.variables)

    def learning_rates(self) -> np.ndarray:
        return np.array(self.opt_state[self._learning_rate_slot()])  # a copy to change

    def set_learning_rates(self, rates: Sequence[float] | np.ndarray) -> None:
        """Each member's learning rate (a plateau schedule sets one member's alone)."""
        import jax.numpy as jnp

        slot = self._learning_rate_slot()
        dtype = self.opt_state[slot].dtype
        self.opt_state[slot] = jnp.asarray(np.asarray(rates, dtype=dtype).reshape(self.k))

    def member_model(
        self, member: int, build: Callable[[], keras.Model] | None = None
    ) -> keras.Model:
        """Member `member` as an ordinary Keras model of its own (its weights), built by
        `build` (the member's own configuration, its own L2 factor) or as the group's."""
        model = build() if build is not None else keras.models.clone_model(self._model)
        for variable, value in zip(model.trainable_variables, self.trainable, strict=True):
            variable.assign(value[member])
        for variable, value in zip(model.non_trainable_variables, self.non_trainable, strict=True):
            variable.assign(value[member])
        return model


def _stack(per_member: list[list[Any]]) -> list[Any]:
    """[[v0, v1, ...] per member] -> [stack of v0, stack of v1, ...] (members first)."""
    import jax.numpy as jnp

    return [jnp.stack(values) for values in zip(*per_member, strict=True)]


AfterRound = Callable[[int, dict[int, dict[str, float]]], "Sequence[int]"]


@dataclass
class MemberResult:
    """One member's training: validation loss per round, its best round, why it ended."""

    history: list[float] = field(default_factory=list)
    best_round: int = 0
    stop_reason: str = ""  # early_stopping, max_epochs, time_limit (as unfused), pruned, diverged


def fit_group(
    group: FusedGroup,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    batch_size: int,
    rounds: int,
    patience: int,
    passes: int = 1,
    plateau: Sequence[bool] = (),
    start_round: int = 1,
    seed: int = 0,
    seconds: float | None = None,
    after_round: AfterRound | None = None,
) -> list[MemberResult]:
    """Train every member for up to `rounds` rounds of `passes` shuffled passes (full
    batches, one order shared by the group), with what the unfused trials' callbacks
    do (tuner/model/train.py), member by member: early stopping on the validation
    loss (`patience` rounds; no best round and no stop before `start_round`, the
    family's share; the best round's weights restored), a plateau schedule where
    `plateau[i]` (Keras' ReduceLROnPlateau: the rate halved after `patience // 2`
    rounds without a loss better by 1e-4) and the group's time limit (`seconds`,
    checked at the end of a round). A member whose validation loss is NaN or infinite
    stops (`diverged`). Once half the members computed have stopped, the step
    computes the others alone (`FusedGroup.compact`). `after_round(round, logs)`
    gets each member that trained in the round its logs (`loss`, `val_loss`,
    `val_data`: without L2, `learning_rate`) and returns the members to stop there
    (`pruned`). Returns one result per member."""
    x, y = train
    rng = np.random.default_rng(seed)
    steps = max(1, len(x) // batch_size)
    stops = _Stopping(group.k, patience, list(plateau) or [False] * group.k, start_round)
    saved = group.snapshot()
    started = time.monotonic()
    for round_ in range(1, rounds + 1):
        trained = group.active.copy()
        rates = group.learning_rates() if group.rate_is_variable else np.full(group.k, np.nan)
        train_loss = _one_round(group, x, y, rng, batch_size=batch_size, passes=passes)
        val_loss = group.evaluate(*val, batch_size=batch_size)
        better = stops.after_round(group, round_, val_loss)
        saved = group.keep_where(better, saved)
        if after_round is not None:
            mean = np.asarray(train_loss, dtype=float) / (passes * steps)
            for m in after_round(round_, _round_logs(group, trained, mean, val_loss, rates)):
                if group.active[m]:
                    stops.results[m].stop_reason = "pruned"
                    group.stop(m)
        if not group.active.any():
            break
        group.compact()
        if seconds is not None and time.monotonic() - started >= seconds:
            stops.end_all(group, "time_limit")
            break
    else:
        stops.end_all(group, "max_epochs")
    group.restore(saved)
    return stops.results


def _one_round(
    group: FusedGroup, x: np.ndarray, y: np.ndarray, rng: Any, *, batch_size: int, passes: int
) -> Any:
    """`passes` shuffled passes of full batches; the members' training loss summed
    over the round's steps (on the device: nothing waits for it here)."""
    steps = max(1, len(x) // batch_size)
    train_loss: Any = 0.0
    for _ in range(passes):
        order = rng.permutation(len(x))
        for step in range(steps):
            batch = order[step * batch_size : (step + 1) * batch_size]
            train_loss = train_loss + group.train_step(x[batch], y[batch])
    return train_loss


def _round_logs(
    group: FusedGroup, trained: np.ndarray, loss: Any, val_loss: Any, rates: np.ndarray
) -> dict[int, dict[str, float]]:
    """What each member that trained in the round logs, as a Keras callback's logs."""
    return {
        int(m): {
            "loss": float(loss[m]),
            "val_loss": float(val_loss[m]),
            "val_data": float(group.data_losses[m]),
            "learning_rate": float(rates[m]),
        }
        for m in np.flatnonzero(trained)
    }


class _Stopping:
    """Each member's early stopping and plateau schedule, as Keras' callbacks do them
    (EarlyStopping with `start_from_epoch`, ReduceLROnPlateau with factor 0.5)."""

    def __init__(self, k: int, patience: int, plateau: list[bool], start_round: int) -> None:
        self.results = [MemberResult() for _ in range(k)]
        self.best = np.full(k, np.inf)  # early stopping's
        self.waited = np.zeros(k, dtype=int)
        self.plateau_best = np.full(k, np.inf)  # the schedule's (better by PLATEAU_DELTA)
        self.calm = np.zeros(k, dtype=int)  # rounds without that since the last cut
        self.patience = patience
        self.plateau = plateau
        self.start_round = start_round

    def after_round(self, group: FusedGroup, round_: int, losses: np.ndarray) -> np.ndarray:
        """Record the round's validation losses; lower the rates of members on a
        plateau and stop those out of patience. Returns which members improved."""
        counts = round_ >= self.start_round
        better: np.ndarray = group.active & (losses < self.best) & counts & np.isfinite(losses)
        for m in np.flatnonzero(group.active):
            self.results[m].history.append(float(losses[m]))
            if not np.isfinite(losses[m]):
                self.results[m].stop_reason = "diverged"
                group.stop(int(m))
                continue
            self._schedule(group, int(m), float(losses[m]))
            if not counts:
                continue
            if better[m]:
                self.best[m], self.results[m].best_round, self.waited[m] = losses[m], round_, 0
            else:
                self.waited[m] += 1
            if self.waited[m] >= self.patience:
                self.results[m].stop_reason = "early_stopping"
                group.stop(int(m))
        return better

    def _schedule(self, group: FusedGroup, member: int, loss: float) -> None:
        if not self.plateau[member]:
            return
        if loss < self.plateau_best[member] - PLATEAU_DELTA:
            self.plateau_best[member], self.calm[member] = loss, 0
            return
        self.calm[member] += 1
        if self.calm[member] >= max(1, self.patience // 2):
            rates = group.learning_rates()
            rates[member] *= 0.5
            group.set_learning_rates(rates)
            self.calm[member] = 0

    def end_all(self, group: FusedGroup, reason: str) -> None:
        for m in np.flatnonzero(group.active):
            self.results[m].stop_reason = reason
            group.stop(int(m))


PLATEAU_DELTA = 1e-4  # Keras' ReduceLROnPlateau min_delta
