"""Starting from a pretrained model: matching layers take its weights, and with
`freeze_recurrent_epochs` the recurrent layers stay as they were that long."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.model.build import build_model
from tuner.model.train import EpochRecorder, FitSettings, fit_trial
from tuner.model.transfer import Pretrained, transfer

PARAMS = {"seq_len": 16, "units_0": 8, "batch_size": 256, "learning_rate": 1e-2}


class _KernelRecorder(EpochRecorder):
    """Also keeps the recurrent kernel after every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        self.kernels.append(np.asarray(self.model.get_layer("lstm").get_weights()[0]))


def _pretrained(params: dict[str, Any]) -> Pretrained:
    data = load_dataset(resolve_dataset("co2"))
    keras.backend.clear_session()
    source = build_model(params, data.info)
    for layer in source.layers:  # weights unlike any fresh model's
        layer.set_weights([np.full_like(w, 0.05) for w in layer.get_weights()])
    return Pretrained.of(source, source="test")


def test_matching_layers_take_the_pretrained_weights_and_others_start_fresh() -> None:
    pretrained = _pretrained(PARAMS)
    info = load_dataset(resolve_dataset("co2")).info
    keras.backend.clear_session()
    same = build_model(PARAMS, info)
    moved = transfer(same, pretrained)
    assert moved.fine_tuned and set(moved.layers) == {"lstm", "dense"}
    np.testing.assert_array_equal(same.get_layer("lstm").get_weights()[0], np.float32(0.05))
    keras.backend.clear_session()
    other = build_model({**PARAMS, "units_0": 4}, info)
    moved = transfer(other, pretrained)
    assert not moved.fine_tuned and "from scratch" in moved.describe("test")
    assert not np.all(other.get_layer("lstm").get_weights()[0] == np.float32(0.05))


def test_frozen_recurrent_layers_keep_their_weights_then_train() -> None:
    pretrained = _pretrained(PARAMS)
    data = load_dataset(resolve_dataset("co2"))
    keras.backend.clear_session()
    recorder = _KernelRecorder()
    result = fit_trial(
        {**PARAMS, "freeze_recurrent_epochs": 2},
        data.windows(16),
        data,
        FitSettings(max_epochs=4, patience=10, seed=0),
        recorder=recorder,
        init=pretrained,
    )
    assert result.transfer is not None and result.transfer.fine_tuned
    assert len(recorder.history) == 4  # both phases recorded, one row per round
    start = pretrained.weights["lstm"][0]
    for kernel in recorder.kernels[:2]:
        np.testing.assert_array_equal(kernel, start)
    assert not np.allclose(recorder.kernels[-1], start)
