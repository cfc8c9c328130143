"""A signal's stop request is honoured at the next batch, not wherever it lands."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tuner.model.stop import STOP
from tuner.model.train import StopOnRequest


class _RequestAt(keras.callbacks.Callback):
    """Asks for a stop after batch `at`, as a signal handler would."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.seen: list[int] = []

    def on_train_batch_end(self, batch: int, logs: object = None) -> None:
        self.seen.append(batch)
        if batch == self.at:
            STOP.request("SIGTERM")


class _AsyncRequestAt(_RequestAt):
    async_safe = True  # as StopOnRequest is: Keras may run batch hooks beside the loop


@pytest.mark.parametrize("asynchronous", [False, True])
def test_training_stops_at_the_batch_after_the_request(asynchronous: bool) -> None:
    """Synchronous callbacks: no batch after the one that saw the request. With
    Keras' asynchronous dispatch (only async-safe callbacks, as in a trial, JAX),
    the loop raises the check's interrupt as it dispatches the next batch."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((64, 4), np.float32), np.zeros((64, 1), np.float32)
    request = (_AsyncRequestAt if asynchronous else _RequestAt)(2)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            model.fit(x, y, batch_size=8, epochs=3, verbose=0,
                      callbacks=[request, StopOnRequest()])  # fmt: skip
    finally:
        STOP.signame = None
    if asynchronous:
        assert request.seen[:3] == [0, 1, 2] and len(request.seen) <= 5  # of 24 batches
    else:
        assert request.seen == [0, 1, 2]  # batch 2 ended, no later batch ran
