"""A tracking server that dies mid-study: bounded retries, one line, exit 1, the
study's Optuna records intact, and the runs left open closed by the next run."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
import time
from collections.abc import Iterator

import optuna
import pytest
from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import Stores, free_port, mlflow_server, start_tuner, tiny_tune_args
from tuner.tracking.outage import HTTP_RETRIES
from tuner.tracking.tracker import Tracker

pytestmark = pytest.mark.slow


def _finished(stores: Stores) -> int:
    try:
        study = optuna.load_study(study_name="tiny", storage=stores.storage)
    except KeyError:
        return 0
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


def test_a_dead_tracking_server_stops_the_study_in_seconds_and_nothing_is_lost(
    stores: Stores,
) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    args = [*tiny_tune_args(stores, trials=40), "--tracking-uri", uri]
    with mlflow_server(stores.root, port):
        tune = start_tuner(*args)
        deadline = time.monotonic() + 300
        while _finished(stores) < 2:
            assert tune.poll() is None and time.monotonic() < deadline, tune.communicate()
            time.sleep(0.5)
    killed = time.monotonic()  # the server is stopped; the study is still running
    _, err = tune.communicate(timeout=300)
    took = time.monotonic() - killed
    assert tune.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"tuner: error: the MLflow tracking server {uri} stopped answering")
    assert f"({HTTP_RETRIES['MLFLOW_HTTP_REQUEST_MAX_RETRIES']} retries over 15 s; " in last
    assert "last error" in last and "Connection refused" in last, last
    assert "Traceback" not in err
    # Seconds, not MLflow's default minutes: a trial's write and the parent's close
    # each retry for 15 s.
    assert took < 120, f"took {took:.0f} s to stop after the server died"
    print(f"stopped {took:.1f} s after the tracking server died")  # shown with pytest -s

    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    assert len([s for s in states if s != TrialState.FAIL]) >= 2  # kept
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the trial whose records could not be written is failed"
    assert failed[-1].user_attrs["fail_reason"].startswith("not recorded in MLflow: the MLflow")

    # The server back: the next run finishes the study and closes what was left open.
    with mlflow_server(stores.root, port):
        done = _finished(stores)
        rerun = start_tuner(*tiny_tune_args(stores, trials=done + 1), "--tracking-uri", uri)
        _, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, err
        assert "closed" in err and "left RUNNING by processes that died" in err
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("tiny")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        assert len(runs) > 3
        assert all(r.info.status != "RUNNING" for r in runs), [r.info.status for r in runs]
        assert "KILLED" in {r.info.status for r in runs}


@contextlib.contextmanager
def _cutting(
    port: int, path_end: str, cuts: list[int], *, headers_first: bool = True
) -> Iterator[str]:
    """A proxy to the server at `port` that passes each request on and, for the first
    `cuts[0]` whose path ends with `path_end`, closes the connection after the answer's
    headers (as a server killed while answering does) or, `headers_first` false,
    before any answer (killed after it read the request)."""
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _pass_on(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            with lock:
                cut = self.path.split("?")[0].endswith(path_end) and cuts[0] > 0
                cuts[0] -= cut
            if cut and not headers_first:
                self.close_connection = True
                return
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.getheader("Content-Type") or "text/plain")
            self.send_header("Content-Length", str(len(data) + 1))
            self.end_headers()
            if cut:
                self.close_connection = True
                return
            self.wfile.write(data + b" ")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _pass_on

        def log_message(self, *args: object) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        thread.join()


def test_an_answer_cut_short_by_a_restart_is_asked_again(stores: Stores) -> None:
    """A restarted server cuts off the answers in flight; MLflow raises on those at
    once (it retries only requests that got no answer), the tracker asks again."""
    with mlflow_server(stores.root) as port:
        cuts = [1]
        with _cutting(port, "/runs/log-batch", cuts) as uri:
            plain = MlflowClient(uri)
            run = plain.create_run(plain.create_experiment("plain")).info.run_id
            with pytest.raises(MlflowException, match="Connection broken"):
                plain.log_batch(run, params=[Param("a", "1")])  # the control: MLflow alone fails

            cuts[0] = 3  # the params, then the metrics twice
            tracker = Tracker(uri, "cut")
            parent = tracker.start_parent("parent", {"units": 16}, {})
            tracker.log_metrics(parent, {"val_loss": 0.5}, step=1)
            tracker.end(parent, "FINISHED")
            assert cuts == [0]
        written = MlflowClient(f"http://127.0.0.1:{port}").get_run(parent)
        assert written.data.params == {"units": "16"}
        assert written.data.metrics == {"val_loss": 0.5}
        assert written.info.status == "FINISHED"


def test_a_write_whose_answer_never_came_is_asked_again(stores: Stores) -> None:
    """MLflow 3.17 does not resend a write it deems unsafe to repeat (runs/create)
    when the connection closed before the answer, as every request in flight does when
    the server restarts (this failed the multi-host rehearsal in CI); the tracker
    finds the run the server created by its key instead of creating a second."""
    with mlflow_server(stores.root) as port:
        cuts = [1]
        with _cutting(port, "/runs/create", cuts, headers_first=False) as uri:
            plain = MlflowClient(uri)
            experiment = plain.create_experiment("plain")
            with pytest.raises(MlflowException, match="Connection aborted"):
                plain.create_run(experiment)  # the control: MLflow alone fails

            cuts[0] = 1
            tracker = Tracker(uri, "dropped")
            parent = tracker.start_parent("parent", {"units": 16}, {})
            tracker.end(parent, "FINISHED")
            assert cuts == [0]
        client = MlflowClient(f"http://127.0.0.1:{port}")
        assert client.get_run(parent).info.status == "FINISHED"
        assert [r.info.run_id for r in client.search_runs([tracker.experiment_id])] == [parent]
