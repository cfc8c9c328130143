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
a plateau schedule lowers one member's rate alone) and whether it still trains (a
member that stopped keeps its weights; the group goes on for the others).

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

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

if TYPE_CHECKING:
    import optuna

# Trial attribute and MLflow tag: the fused group a trial trained in.
FUSED_GROUP = "fused_group"


def mapped(params: Mapping[str, Any]) -> frozenset[str]:
    """The parameters a group's members may differ in: data mapped with the members,
    not part of the graph. The learning rate is an optimizer variable, except under a
    cosine schedule, which holds its starting rate as a constant."""
    return frozenset() if params.get("lr_schedule") == "cosine" else frozenset({"learning_rate"})


def structure(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What every member of a group shares: the parameters that shape the program."""
    free = mapped(params)
    return tuple(sorted((k, v) for k, v in params.items() if k not in free))


def fill_group(study: optuna.Study, params: Mapping[str, Any], members: int, group: str) -> None:
    """Enqueue `members - 1` trials with the structure of `params` (a trial the sampler
    drew): the sampler draws only what `mapped` leaves free, and TPE's constant liar
    keeps the members' draws apart. Each is its own trial, tagged with `group`."""
    for _ in range(members - 1):
        study.enqueue_trial(
            dict(structure(params)), user_attrs={FUSED_GROUP: group}, skip_if_exists=False
        )


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
    ) -> None:
        import jax

        if keras.backend.backend() != "jax":
            raise RuntimeError("fused trials need the JAX backend (KERAS_BACKEND=jax)")
        self.k = len(seeds)
        models = []
        for seed in seeds:  # each member initialised from its own seed
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
        self.active = np.ones(self.k, dtype=bool)
        self._train = jax.jit(jax.vmap(self._one_step, in_axes=(0, 0, 0, 0, None, None)))
        self._eval = jax.jit(jax.vmap(self._one_loss, in_axes=(0, 0, None, None)))

    # -- the member's step, mapped over the group ---------------------------------

    def _one_loss(self, trainable: list[Any], non_trainable: list[Any], x: Any, y: Any) -> Any:
        y_pred, _ = self._model.stateless_call(trainable, non_trainable, x, training=False)
        return keras.ops.mean(self._loss(y, y_pred))

    def _one_step(
        self, trainable: list[Any], non_trainable: list[Any], opt_state: list[Any], active: Any,
        x: Any, y: Any,
    ) -> tuple[list[Any], list[Any], list[Any], Any]:  # fmt: skip
        import jax
        import jax.numpy as jnp

        def loss_of(tv: list[Any], ntv: list[Any]) -> tuple[Any, list[Any]]:
            y_pred, ntv, losses = self._model.stateless_call(
                tv, ntv, x, training=True, return_losses=True
            )
            return jnp.mean(self._loss(y, y_pred)) + sum(losses), ntv

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

    # -- the group's interface ----------------------------------------------------

    def train_step(self, x: Any, y: Any) -> np.ndarray:
        """One optimizer step of every active member on the batch (x, y); their losses."""
        self.trainable, self.non_trainable, self.opt_state, loss = self._train(
            self.trainable, self.non_trainable, self.opt_state, self.active, x, y
        )
        return np.asarray(loss)

    def evaluate(self, x: Any, y: Any) -> np.ndarray:
        """Each member's mean loss on (x, y), without dropout."""
        return np.asarray(self._eval(self.trainable, self.non_trainable, x, y))

    def stop(self, member: int) -> None:
        """Member `member` trains no more (its weights and optimizer state stay)."""
        self.active[member] = False

    def _learning_rate_slot(self) -> int:
        for i, variable in enumerate(self._optimizer.variables):
            if variable.path.endswith("learning_rate"):
                return i
        raise RuntimeError("this optimizer's learning rate is a schedule, not a variable")

    def learning_rates(self) -> np.ndarray:
        return np.asarray(self.opt_state[self._learning_rate_slot()])

    def set_learning_rates(self, rates: Sequence[float]) -> None:
        """Each member's learning rate (a plateau schedule sets one member's alone)."""
        import jax.numpy as jnp

        slot = self._learning_rate_slot()
        dtype = self.opt_state[slot].dtype
        self.opt_state[slot] = jnp.asarray(np.asarray(rates, dtype=dtype).reshape(self.k))

    def member_model(self, member: int) -> keras.Model:
        """Member `member` as an ordinary Keras model of its own (its weights)."""
        model = keras.models.clone_model(self._model)
        for variable, value in zip(model.trainable_variables, self.trainable, strict=True):
            variable.assign(value[member])
        for variable, value in zip(model.non_trainable_variables, self.non_trainable, strict=True):
            variable.assign(value[member])
        return model


def _stack(per_member: list[list[Any]]) -> list[Any]:
    """[[v0, v1, ...] per member] -> [stack of v0, stack of v1, ...] (members first)."""
    import jax.numpy as jnp

    return [jnp.stack(values) for values in zip(*per_member, strict=True)]
