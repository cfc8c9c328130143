"""A stop asked for by a signal, honoured at safe points.

A worker's SIGINT/SIGTERM handler records the request instead of raising at
whatever line the process happens to run: an exception inside a storage or
MLflow write can leave the SQLite store locked or a run half-written. Training
checks the request after every batch (`StopOnRequest` in `tuner.model.train`),
the trial loop between trials; either raises `KeyboardInterrupt` there.
"""

from __future__ import annotations


class StopRequest:
    """A stop asked for by a signal, honoured at the next safe point."""

    def __init__(self) -> None:
        self.signame: str | None = None

    def request(self, signame: str) -> None:
        self.signame = signame

    def check(self) -> None:
        """Raise `KeyboardInterrupt` (with the signal's name) if a stop was requested."""
        if self.signame:
            raise KeyboardInterrupt(self.signame)


STOP = StopRequest()  # one per process
