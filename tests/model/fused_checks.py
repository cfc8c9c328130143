"""The fused-trial checks, run under KERAS_BACKEND=jax in a process of their own
(tests/model/test_fused.py): `python fused_checks.py` prints `ok NAME` for each
check that held and stops at the first that did not."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

assert keras.backend.backend() == "jax", keras.backend.backend()

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 12, 2)).astype("float32")
Y = (X[:, -1, :1] * 0.5 + X[:, -3, 1:] * 0.2).astype("float32")


def _build() -> keras.Model:
    inputs = keras.Input((12, 2))
    x = keras.layers.LSTM(8)(inputs)
    x = keras.layers.Dropout(0.1)(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


def _group(seeds: list[int], rates: list[float]):  # type: ignore[no-untyped-def]
    from tuner.model.fused import FusedGroup

    return FusedGroup(
        _build,
        lambda: keras.optimizers.Adam(1e-3),
        keras.losses.mean_squared_error,
        seeds=seeds,
        learning_rates=rates,
    )


def _alone(seed: int, rate: float, steps: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = _build()
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    for step in range(steps):
        batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
        model.train_on_batch(X[batch], Y[batch])
    return model


def check_each_member_trains_as_it_would_alone() -> None:
    seeds, rates = [3, 4, 5], [1e-3, 1e-2, 3e-3]
    group = _group(seeds, rates)
    for step in range(8):
        batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
        losses = group.train_step(X[batch], Y[batch])
    assert losses.shape == (3,)
    np.testing.assert_allclose(group.learning_rates(), rates, rtol=1e-6)
    for member, (seed, rate) in enumerate(zip(seeds, rates, strict=True)):
        fused = group.member_model(member).get_weights()
        alone = _alone(seed, rate, 8).get_weights()
        assert len(fused) == len(alone)
        for mine, its in zip(fused, alone, strict=True):
            np.testing.assert_allclose(mine, its, rtol=1e-4, atol=1e-6)
    val = group.evaluate(X, Y)
    assert val.shape == (3,) and np.all(np.isfinite(val))


def check_a_stopped_member_keeps_its_weights_while_the_others_train() -> None:
    group = _group([1, 2], [1e-2, 1e-2])
    group.train_step(X[:16], Y[:16])
    before = [group.member_model(m).get_weights() for m in (0, 1)]
    group.stop(0)
    for _ in range(3):
        group.train_step(X[16:32], Y[16:32])
    after = [group.member_model(m).get_weights() for m in (0, 1)]
    for old, new in zip(before[0], after[0], strict=True):
        np.testing.assert_array_equal(old, new)
    assert not all(np.allclose(o, n) for o, n in zip(before[1], after[1], strict=True))


def check_a_compacted_group_computes_its_active_members_alone_and_the_same() -> None:
    # Three of four members stop: the group computes the fourth alone from then on, and
    # every member ends as in a group that went on computing all four.
    rates = [1e-2, 3e-3, 1e-3, 5e-3]
    wide, narrow = _group([1, 2, 3, 4], rates), _group([1, 2, 3, 4], rates)
    for group in (wide, narrow):
        group.train_step(X[:16], Y[:16])
        for member in (0, 1, 2):
            group.stop(member)
    assert narrow.compact() and list(narrow.lanes) == [3]
    assert not narrow.compact()  # already narrow
    for step in range(4):
        batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
        a, b = wide.train_step(X[batch], Y[batch]), narrow.train_step(X[batch], Y[batch])
        np.testing.assert_allclose(np.asarray(a)[3], np.asarray(b)[3], rtol=1e-5)
    for member in range(4):
        for mine, its in zip(narrow.member_model(member).get_weights(),
                             wide.member_model(member).get_weights(), strict=True):  # fmt: skip
            np.testing.assert_allclose(mine, its, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(narrow.evaluate(X, Y), wide.evaluate(X, Y), rtol=1e-5)


def check_one_members_rate_changes_alone_and_its_model_saves_as_any_other(
    tmp_path: Path,
) -> None:
    group = _group([1, 2], [1e-2, 1e-2])
    group.set_learning_rates([1e-2, 5e-3])  # a plateau lowered member 1's rate
    np.testing.assert_allclose(group.learning_rates(), [1e-2, 5e-3], rtol=1e-6)
    group.train_step(X[:16], Y[:16])
    model = group.member_model(1)
    model.save(tmp_path / "member.keras")
    loaded = keras.saving.load_model(tmp_path / "member.keras")
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


def check_each_member_stops_on_its_own_and_keeps_its_best_round() -> None:
    from tuner.model.fused import fit_group

    # Member 1's rate is so small that its weights never move (float32 absorbs each
    # update): the same validation loss every round, so its plateau halves the rate at
    # rounds 2, 3 and 4 and early stopping ends it at round 4, patience 3 after round 1.
    group = _group([1, 2], [3e-3, 1e-30])
    train, val = (X[:48], Y[:48]), (X[48:], Y[48:])
    results = fit_group(
        group, train, val, batch_size=16, rounds=12, patience=3, plateau=[False, True]
    )
    steady, stuck = results
    assert stuck.stop_reason == "early_stopping" and len(stuck.history) == 4, stuck
    assert len(set(stuck.history)) == 1 and stuck.best_round == 1
    assert steady.stop_reason in ("early_stopping", "max_epochs") and len(steady.history) > 4
    rates = group.learning_rates()
    np.testing.assert_allclose(rates, [3e-3, 1e-30 / 8], rtol=1e-6)  # one rate lowered
    restored = group.evaluate(*val, batch_size=16)
    for member, result in enumerate(results):
        assert result.best_round == int(np.argmin(result.history)) + 1
        np.testing.assert_allclose(restored[member], min(result.history), rtol=1e-5)


def check_no_best_round_and_no_stop_before_the_familys_share() -> None:
    from tuner.model.fused import fit_group

    group = _group([1], [1e-30])  # a flat loss: it would stop at round 4 from round 1
    val = (X[48:], Y[48:])
    (result,) = fit_group(
        group, (X[:48], Y[:48]), val, batch_size=16, rounds=12, patience=3, start_round=5
    )
    assert result.best_round == 5 and len(result.history) == 8, result  # 5, then 3 more


def check_a_binary_classifiers_group_loss_is_keras_val_loss() -> None:
    # A sigmoid output (batch, 1) against labels (batch, 1) (as_targets): the task's
    # Loss object, as Keras' compiled loss, with the L2 penalty.
    from tuner.data.spec import DatasetInfo
    from tuner.model.build import build_model, compile_args
    from tuner.model.fused import FusedGroup

    info = DatasetInfo(task="classification", n_features=2, n_targets=1, n_classes=2,
                       n_rows=64, n_train=48, max_seq_len=12, horizon=1)  # fmt: skip
    params = {"units_0": 8, "l2": 1e-3}
    args = compile_args(info)
    group = FusedGroup(
        lambda: build_model(params, info), lambda: keras.optimizers.Adam(1e-3), args["loss"],
        seeds=[1, 2],
    )  # fmt: skip
    labels = (X[:, -1, 0] > 0).astype("float32")[:, None]  # as the batches give them
    fused = group.evaluate(X, labels)
    for member in range(2):
        model = group.member_model(member)
        model.compile(optimizer="adam", **args)
        alone = model.evaluate(X, labels, batch_size=64, verbose=0, return_dict=True)["loss"]
        np.testing.assert_allclose(fused[member], alone, rtol=1e-5)


def check_each_member_trains_with_its_own_weight_penalty() -> None:
    # L2 as mapped data: the group's model penalises its kernels by PENALTY_UNIT and each
    # member's factor scales that; each member trains as the model built with its own
    # L2 trains alone (the same seed, the same batches), and comes out with its own L2.
    from tuner.data.spec import DatasetInfo
    from tuner.model.build import build_model, compile_args
    from tuner.model.fused import PENALTY_UNIT, FusedGroup

    info = DatasetInfo(task="classification", n_features=2, n_targets=1, n_classes=2,
                       n_rows=64, n_train=48, max_seq_len=12, horizon=1)  # fmt: skip
    penalties, seeds = [1e-4, 3e-2, 0.0], [1, 2, 3]
    args = compile_args(info)
    group = FusedGroup(
        lambda: build_model({"units_0": 8, "l2": PENALTY_UNIT}, info),
        lambda: keras.optimizers.Adam(1e-2), args["loss"], seeds=seeds, penalties=penalties,
    )  # fmt: skip
    labels = (X[:, -1, 0] > 0).astype("float32")[:, None]
    for step in range(6):
        batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
        group.train_step(X[batch], labels[batch])
    fused_val = group.evaluate(X, labels)
    for member, (seed, l2) in enumerate(zip(seeds, penalties, strict=True)):
        keras.utils.set_random_seed(seed)
        alone = build_model({"units_0": 8, "l2": l2}, info)
        alone.compile(optimizer=keras.optimizers.Adam(1e-2), **args)
        for step in range(6):
            batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
            alone.train_on_batch(X[batch], labels[batch])
        mine = group.member_model(member, lambda l2=l2: build_model({"units_0": 8, "l2": l2}, info))
        for a, b in zip(mine.get_weights(), alone.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        val = alone.evaluate(X, labels, batch_size=64, verbose=0, return_dict=True)["loss"]
        np.testing.assert_allclose(fused_val[member], val, rtol=1e-5)
        kernels = [layer.kernel_regularizer for layer in mine.layers
                   if getattr(layer, "kernel_regularizer", None) is not None]  # fmt: skip
        assert all(float(r.l2) == l2 for r in kernels) and (bool(kernels) == (l2 > 0)), kernels
    assert len(set(np.round(fused_val, 6))) == 3  # three different penalties, three losses


if __name__ == "__main__":
    import tempfile

    for name, check in list(globals().items()):
        if name.startswith("check_"):
            with tempfile.TemporaryDirectory() as tmp:
                check(Path(tmp)) if "tmp_path" in check.__code__.co_varnames else check()
            print(f"ok {name.removeprefix('check_')}", flush=True)
    sys.exit(0)
