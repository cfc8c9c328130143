"""A tracking server that stops answering: MLflow's retries bounded, the answers a
restart cut short asked again, and the one line said when it stays down."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import requests
from mlflow.entities import Run
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
# The server died while answering ("Connection broken": headers, then no body) or
# before it answered a request it may have processed ("Connection aborted"): MLflow
# retries neither for a write that is not safe to repeat (runs/create, ...).
_CUT_SHORT = ("Connection broken", "Connection aborted")
_SAID_CHARS = 160  # of the last error, in the one line
_UNREACHABLE = (
    "Max retries exceeded",
    "Connection refused",
    "Read timed out",
    "ConnectionError",
    *_CUT_SHORT,
)


def tracking_down(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a tracking server that did not answer."""
    for seen in causes(error):
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        if isinstance(seen, MlflowException) and any(m in str(seen) for m in _UNREACHABLE):
            return True
    return False


def unavailable(tracking_uri: str, error: BaseException) -> str:
    """The one line said when the tracking server stops answering: with the last
    error seen (`error`'s innermost cause), shortened."""
    retries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    waited = float(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) * (2**retries - 1)
    last = list(causes(error))[-1]
    said = " ".join(str(last).split())
    said = said if len(said) <= _SAID_CHARS else said[: _SAID_CHARS - 3] + "..."
    return (
        f"the MLflow tracking server {mask_secrets(tracking_uri)} stopped answering "
        f"({retries} retries over {waited:.0f} s; last error {type(last).__name__}: "
        f"{mask_secrets(said)}); the study's trials are kept in its storage: start the "
        "server again and rerun the same command (the runs left open are closed then)"
    )


def cut_short(error: BaseException) -> bool:
    """Whether `error` is an answer the server began and never finished, or never
    began for a request it had read (it died or restarted meanwhile)."""
    return any(cut in str(seen) for seen in causes(error) for cut in _CUT_SHORT)


_ASK_AGAIN_AFTER_S = (1, 2, 4)
CREATE_KEY_TAG = "tuner.create_key"  # a run's own key: found, not created twice


class AskedAgain:
    """An MlflowClient whose calls are made again when the server's answer was cut
    short: MLflow retries a request that could not be sent (for minutes, while the
    server is down) but raises at once on one cut off mid-answer, and on a write not
    safe to repeat (runs/create, ...) whose connection closed before the answer, which
    a restarted server does to every request in flight. A call made twice writes the
    same values again (a metric's point twice at its step); a run is looked up by a key
    it was created with before it is created again."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found
        return lambda *args, **kwargs: asked_again(found, *args, **kwargs)

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """`MlflowClient.create_run`, once: a run whose answer was lost is found by
        its key (the server may or may not have created it)."""
        key = uuid.uuid4().hex
        tags = {**(tags or {}), CREATE_KEY_TAG: key}
        asked = False

        def once() -> Run:
            nonlocal asked
            if asked:  # the last answer was lost
                query = f"tags.`{CREATE_KEY_TAG}` = '{key}'"
                found = self.search_runs([experiment_id], filter_string=query, max_results=1)
                if found:
                    return cast(Run, found[0])
            asked = True
            return self._client.create_run(experiment_id, start_time, tags, run_name)

        return cast(Run, asked_again(once))


def asked_again(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    for wait in _ASK_AGAIN_AFTER_S:
        try:
            return call(*args, **kwargs)
        except Exception as e:
            if not cut_short(e):
                raise
            time.sleep(wait)
    return call(*args, **kwargs)
