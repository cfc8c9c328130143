"""A tracking server that stops answering: MLflow's retries bounded, the answers a
restart cut short asked again, and the one line said when it stays down."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tuner.errors import causes
from tuner.stores import mask_secrets

# Bounded retries against a tracking server (MLflow's defaults retry for minutes):
# 4 retries 1, 2, 4 and 8 s apart, each request given 20 s.
HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
for _name, _value in HTTP_RETRIES.items():  # read by MLflow at each request
    os.environ.setdefault(_name, _value)
_CUT_SHORT = "Connection broken"  # the server died while answering: MLflow does not retry that
_UNREACHABLE = (
    "Max retries exceeded",
    "Connection refused",
    "Read timed out",
    "ConnectionError",
    _CUT_SHORT,
)


def tracking_down(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a tracking server that did not answer."""
    for seen in causes(error):
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        if isinstance(seen, MlflowException) and any(m in str(seen) for m in _UNREACHABLE):
            return True
    return False


def unavailable(tracking_uri: str) -> str:
    """The one line said when the tracking server stops answering."""
    retries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    waited = float(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) * (2**retries - 1)
    return (
        f"the MLflow tracking server {mask_secrets(tracking_uri)} stopped answering "
        f"({retries} retries over {waited:.0f} s); the study's trials are kept in its "
        "storage: start the server again and rerun the same command (the runs left "
        "open are closed then)"
    )


def cut_short(error: BaseException) -> bool:
    """Whether `error` is an answer the server began and never finished (it died or
    restarted while answering)."""
    return any(_CUT_SHORT in str(seen) for seen in causes(error))


_ASK_AGAIN_AFTER_S = (1, 2, 4)


class AskedAgain:
    """An MlflowClient whose calls are made again when the server's answer was cut
    short: MLflow retries a request that got no answer (for minutes, while the server
    is down) but raises at once on one cut off mid-answer, which a restarted server
    does to every request in flight. A call made twice writes the same values again
    (a metric's point twice at its step); a run created twice leaves one run that the
    next `close_dead_runs` ends."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found
        return lambda *args, **kwargs: asked_again(found, *args, **kwargs)


def asked_again(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    for wait in _ASK_AGAIN_AFTER_S:
        try:
            return call(*args, **kwargs)
        except Exception as e:
            if not cut_short(e):
                raise
            time.sleep(wait)
    return call(*args, **kwargs)
