"""The training budget in rounds: a tiny set gets thousands of optimizer steps, a
large one a pass a round, as before (asserted on what Keras is asked to fit, not
timed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tuner.data.catalog import resolve_dataset
from tuner.data.sequences import load_sequences
from tuner.data.spec import Windows
from tuner.model.batches import TrainBatches
from tuner.model.budget import MAX_PASSES, fit_seconds, passes_per_round, steps_per_round
from tuner.model.params import TrialParams
from tuner.model.train import EpochRecorder, FitSettings, fit_trial


class _FitArguments(EpochRecorder):
    """Keeps what Keras was asked to run: steps per epoch and epochs."""

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.fit_params = dict(self.params)


def test_a_tiny_set_gets_thousands_of_steps_a_large_one_a_pass_a_round() -> None:
    tiny = passes_per_round(30, 16)  # 30 sequences: 1 batch of 16 a pass, 128 for 2,048
    assert tiny == MAX_PASSES == 100 and steps_per_round(30, 16) == 100
    assert 20 * steps_per_round(30, 16) == 2_000  # --max-epochs 20 rounds
    assert passes_per_round(53, 16) == 43  # 48 sequences a pass in full batches
    assert passes_per_round(30_000, 64) == 1  # 468 steps: one pass a round, as before
    assert steps_per_round(30_000, 64) == 30_000 // 64
    assert passes_per_round(1, 16) == MAX_PASSES  # capped
    assert passes_per_round(8_640, 256) == 1  # ETTh1: 33 steps a pass
    assert passes_per_round(1_805, 16, targets=64) == 1  # alice: 115,520 characters
    assert passes_per_round(1_534, 64, targets=13) == 1  # co2: 13 weeks a forecast
    assert passes_per_round(1_534, 64) == 2  # the same windows, a one-step forecast each


def test_the_fit_runs_the_rounds_with_several_passes_each() -> None:
    data = load_sequences(resolve_dataset("italy_power_demand"))
    windows = data.windows(0)
    recorder = _FitArguments()
    params = {"units_0": 4, "batch_size": 16}
    result = fit_trial(
        params, windows, data, FitSettings(max_epochs=2, patience=2, seed=0), recorder=recorder
    )
    n = len(windows["train"].x)  # 53 sequences: 3 batches of 16 a pass, 43 passes
    assert recorder.fit_params["steps"] == steps_per_round(n, 16) == 3 * passes_per_round(n, 16)
    assert recorder.fit_params["epochs"] == 2 == result.epochs_run


def test_each_pass_of_a_round_sees_every_full_batch_of_distinct_windows() -> None:
    split = Windows(x=np.arange(10, dtype=np.float32)[:, None, None], y=np.arange(10))
    batches = TrainBatches(split, 4, seed=0, passes=3)
    assert len(batches) == 6  # 2 full batches a pass
    for p in range(3):
        seen = np.concatenate([batches[2 * p + i][1].ravel() for i in range(2)])
        assert len(set(seen.tolist())) == 8


def test_a_time_limited_fit_stops_after_the_round_it_ran_out_in_and_is_scored() -> None:
    data = load_sequences(resolve_dataset("italy_power_demand"))
    settings = FitSettings(max_epochs=5, patience=5, seed=0, seconds=1e-3)
    result = fit_trial(
        {"units_0": 4, "batch_size": 16}, data.windows(0), data, settings, recorder=EpochRecorder()
    )
    assert result.stop_reason == "time_limit" and result.epochs_run == 1
    assert 0 <= result.val_metrics["accuracy"] <= 1


def test_no_early_stop_and_no_best_round_before_the_familys_share() -> None:
    # A learning rate too small to move a weight: the validation loss never improves
    # (a convolutional branch's batch norm statistics still move it, so it may).
    data = load_sequences(resolve_dataset("italy_power_demand"))
    settings = FitSettings(max_epochs=10, patience=1, seed=0)
    still = {"units_0": 4, "batch_size": 16, "learning_rate": 1e-12}
    recurrent = fit_trial(still, data.windows(0), data, settings, recorder=EpochRecorder())
    assert TrialParams(still).min_rounds(10) == 1
    assert recurrent.stop_reason == "early_stopping" and recurrent.epochs_run == 2
    conv = {**still, "conv_layers": 1, "conv_filters": 4}
    assert TrialParams(conv).min_rounds(10) == 4  # FAMILY_MIN_SHARE: 40 % of the rounds
    result = fit_trial(conv, data.windows(0), data, settings, recorder=EpochRecorder())
    assert result.epochs_run >= 5 and result.best_epoch >= 4


def test_a_timed_study_gives_a_trial_a_quarter_of_it_a_portfolio_trial_half_or_what_is_left() -> (
    None
):
    assert fit_seconds(600, folds=0) == 150
    assert fit_seconds(600, folds=5) == 30
    assert fit_seconds(None, folds=5) is None
    assert fit_seconds(600, folds=0, left=400) == 150
    assert fit_seconds(600, folds=0, left=90) == 90  # never past the study's end
    assert fit_seconds(600, folds=3, left=90) == 30
    assert fit_seconds(600, folds=0, portfolio=True) == 300  # a known-good configuration
    assert fit_seconds(600, folds=0, left=200, portfolio=True) == 200


def test_batch_norm_statistics_converge_within_a_small_sets_first_rounds() -> None:
    # Inference uses the moving statistics: on 53 sequences they must match the
    # training batches' after one round (117 steps), or the model answers one class at
    # validation however well it trains (Keras' default momentum, 0.99, left the
    # first block's moving variance 25x the batches' on Coffee).
    data = load_sequences(resolve_dataset("italy_power_demand"))
    windows = data.windows(0)
    params = {"units_0": 4, "conv_layers": 1, "conv_filters": 8, "batch_size": 16}
    settings = FitSettings(max_epochs=1, patience=1, seed=0)
    model = fit_trial(params, windows, data, settings, recorder=EpochRecorder()).model
    norm = next(x for x in model.layers if isinstance(x, keras.layers.BatchNormalization))
    inputs = keras.Model(model.inputs, norm.input)(np.asarray(windows["train"].x))
    actual = np.asarray(inputs).var(axis=(0, 1))
    ratio = np.asarray(norm.moving_variance) / actual
    assert 0.75 < float(np.median(ratio)) < 1.33, ratio  # 0.97 here; 2.6 at momentum 0.99
