"""MLflow layout: one experiment per study, a parent run per
invocation, a nested child run per trial, the best model registered with the
alias `champion`.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import mlflow
import requests
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tuner.errors import InputError, Opt
from tuner.model.params import TrialParams
from tuner.stores import check_sqlite, make_folder, mask_secrets, store_lock, tracking_server
from tuner.tracking.models import (
    pyfunc_parts,
    save_model_files,
    served_signature,
)
from tuner.tracking.outage import AskedAgain, asked_again

CHAMPION = "champion"
OBJECTIVE_TAG = "objective"  # a registered version's validation objective, exactly (repr)
DIGEST_CHARS = 36  # MLflow's dataset digest column
EPOCH_PREFIX = "epoch/"  # per-epoch curves (steps from 1); plain names hold a trial's result
EXPERIMENT_KIND = "mlflow.experimentKind"  # MLflow 3's view an experiment opens on
MODEL_TRAINING = "custom_model_development"
# MLflow 3.17's UI picks an experiment's landing page from the browser's own
# GenAI / Model-training switch (GenAI until a user flips it), not from the tag
# above, and shows no metric column until one is chosen. The link the service
# prints opens the runs table in model-training mode with a view stored on the
# experiment (a "shared view") that adds the objective's column.
RUNS_VIEW = "tuner"
SHARED_VIEW_TAG = "mlflow.sharedViewState."
UI_BASE = "http://127.0.0.1:5000"  # `make ui` / `tuner ui`
_UI_DEFAULT_COLUMNS = ["attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`"]


def runs_view_url(tracking_uri: str, experiment_id: str, *, base: str | None = None) -> str:
    """The experiment's runs table with the objective column: the link to open."""
    if base is None:
        http = tracking_server(tracking_uri)
        base = mask_secrets(tracking_uri.rstrip("/")) if http else UI_BASE
    query = f"workflowType=machine_learning&viewStateShareKey={RUNS_VIEW}"
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def ui_links(tracking_uri: str, base: str) -> list[tuple[str, str]]:
    """(experiment name, runs link) for each experiment the service created."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    return [
        (e.name, runs_view_url(tracking_uri, e.experiment_id, base=base))
        for e in client.search_experiments()
        if SHARED_VIEW_TAG + RUNS_VIEW in e.tags
    ]


def resolve_tracking_uri(uri: str) -> str:
    """Make a local SQLite store's path absolute and its folder exist; check servers answer."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
        make_folder(path.parent, option="tracking_uri")
        check_sqlite(path, option="tracking_uri", table="experiments", kind="an MLflow store")
        with store_lock(path):  # the first client creates and migrates the tables
            MlflowClient(uri).search_experiments(max_results=1)
        return f"sqlite:///{path.resolve()}"
    if parsed.scheme in ("http", "https"):
        _check_server(uri)
    if parsed.scheme in ("", "file") and os.environ.get(_FILE_STORE_OPT_IN, "").lower() != "true":
        raise InputError(
            f"{Opt('tracking_uri', uri)}: a folder is MLflow's file store, which MLflow "
            f"{mlflow.__version__} refuses (maintenance mode); pass "
            f"sqlite:///{parsed.path.rstrip('/') or 'mlflow'}.db or a server's http:// URL, or "
            f"set {_FILE_STORE_OPT_IN}=true to use the folder."
        )
    return uri


_FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"  # MLflow's own opt-out of the refusal


def _check_server(uri: str) -> None:
    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as e:
        raise InputError(
            f"{Opt('tracking_uri')}: MLflow server {mask_secrets(uri)} is unreachable "
            f"({type(e).__name__}); start it or pass a reachable URI."
        ) from None


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = mask_secrets(str(value))
    return flat


_HOST, _PID = "host", "pid"  # the process that writes a run, to close it if it dies


def _owner_tags() -> dict[str, str]:
    return {_HOST: socket.gethostname(), _PID: str(os.getpid())}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


MLFLOW_LOCK_WAIT_S = 20  # MLflow's own busy_timeout on SQLite (mlflow/store/db/utils.py)


def check_experiment(tracking_uri: str, name: str) -> None:
    """Refuse, before a study is created or resumed, an experiment `name` that was
    deleted in MLflow (its runs cannot be written to); creates nothing."""
    refuse_deleted(MlflowClient(tracking_uri).get_experiment_by_name(name), name)


def refuse_deleted(found: Any, name: str) -> None:
    if found is not None and found.lifecycle_stage == "deleted":
        raise InputError(
            f"MLflow experiment {name!r} (id {found.experiment_id}) was deleted; restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}) or pass "
            f"{Opt('experiment', 'NEW_NAME')}."
        )


class Tracker:
    """Writes one invocation's runs; every call names the run it writes to."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.client = cast(MlflowClient, AskedAgain(MlflowClient(tracking_uri)))
        self.experiment_id = self._experiment_id()
        self._pending: dict[str, _Pending] = {}  # per run: buffered metrics
        self.parent_id = ""

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        refuse_deleted(found, self.experiment_name)
        if found is not None:
            if EXPERIMENT_KIND not in found.tags:  # created by an earlier version
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
            return str(found.experiment_id)
        location = None
        if self.tracking_uri.startswith("sqlite:///"):
            store = Path(self.tracking_uri.removeprefix("sqlite:///")).parent
            location = (store / "artifacts" / self.experiment_name).resolve().as_uri()
        try:
            # Marked as model training: MLflow 3 treats an unmarked experiment as GenAI.
            return str(
                self.client.create_experiment(
                    self.experiment_name, location, tags={EXPERIMENT_KIND: MODEL_TRAINING}
                )
            )
        except MlflowException:  # created meanwhile by another worker
            created = self.client.get_experiment_by_name(self.experiment_name)
            if created is None:
                raise
            return str(created.experiment_id)

    def set_runs_view(self, metric: str) -> str:
        """Store the runs-table view with `metric` as a column; return its link."""
        view = {
            "selectedColumns": [*_UI_DEFAULT_COLUMNS, f"metrics.`{metric}`"],
            "orderByKey": "attributes.start_time",  # keeps trials nested under their parent
            "orderByAsc": False,
        }
        self.client.set_experiment_tag(
            self.experiment_id, SHARED_VIEW_TAG + RUNS_VIEW, json.dumps(view)
        )
        return runs_view_url(self.tracking_uri, self.experiment_id)

    def start_parent(self, name: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={**tags, **_owner_tags()}
        )
        self.parent_id = run.info.run_id
        self.log_params(self.parent_id, config)
        return self.parent_id

    def start_trial(
        self,
        number: int,
        params: Mapping[str, Any],
        *,
        device: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"t{number:03d} {TrialParams.of(params).short_name()}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                "trial_number": str(number),
                "state": "running",
                "device": device,
                **_owner_tags(),
                **(tags or {}),
            },
        )
        self.log_params(run.info.run_id, params)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        flat = _flatten(params)
        rows = [Param(k, mask_secrets(v)[:6000]) for k, v in flat.items()]
        self.client.log_batch(run_id, params=rows)

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], *, step: int = 0, buffered: bool = False
    ) -> None:
        """Write `metrics` at `step`; `buffered` (the per-epoch curves): kept and written
        in one call every 10 s and when the run ends, since a write per epoch costs a
        short trial several percent of its time."""
        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if not buffered:
            self.client.log_batch(run_id, metrics=rows)
            return
        pending = self._pending.setdefault(run_id, _Pending())
        pending.rows += rows
        if time.monotonic() - pending.since >= _FLUSH_EVERY_S:
            self.flush(run_id)

    def flush(self, run_id: str) -> None:
        """Write the run's buffered metrics now."""
        pending = self._pending.pop(run_id, None)
        rows = pending.rows if pending else []
        for start in range(0, len(rows), _MAX_BATCH):  # MLflow takes 1000 metrics a call
            self.client.log_batch(run_id, metrics=rows[start : start + _MAX_BATCH])

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        """A matplotlib figure as a PNG artifact (replacing one at the same path)."""
        import matplotlib.pyplot as plt  # deferred: only processes that draw load it

        self.client.log_figure(run_id, figure, path)
        plt.close(figure)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(
            run_id, tags=[RunTag(k, mask_secrets(str(v))) for k, v in tags.items()]
        )

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        text = mask_secrets(json.dumps(data, indent=2, default=str))
        self.client.log_text(run_id, text, name)

    def log_dataset(self, run_id: str, fingerprint: Mapping[str, Any], source: Path) -> None:
        """The study's data as the run's input (MLflow's Datasets column): its name,
        the file's SHA-256 as digest (the first 36 hex digits, all MLflow keeps) and
        where it was read from."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a file
            warnings.simplefilter("ignore", UserWarning)
            where = resolve_dataset_source(source.resolve().as_uri())
        dataset = MetaDataset(  # type: ignore[abstract]  # MLflow's documented use
            where, name=str(fingerprint["name"]), digest=str(fingerprint["sha256"])[:DIGEST_CHARS]
        )
        context = InputTag(key="mlflow.data.context", value="tuning")
        entity = DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[context])
        self.client.log_inputs(run_id, datasets=[entity])

    def log_artifacts(self, run_id: str, folder: Path, path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path=path)

    def end(self, run_id: str, status: str) -> None:
        self.flush(run_id)
        self.client.set_terminated(run_id, status)

    def close_dead_runs(self) -> int:
        """End as KILLED the runs this host's processes left RUNNING when they died
        (kill -9, out of memory, power loss): their process is gone. Returns how many."""
        host = socket.gethostname()
        running = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.{_HOST} = '{host}'",
            max_results=1000,
        )
        dead = [r for r in running if not _alive(int(r.data.tags.get(_PID, "0") or 0))]
        for run in dead:
            reason = f"its process {run.data.tags.get(_PID)} on {host} died"
            self.set_tags(run.info.run_id, {"closed_because": reason})
            self.end(run.info.run_id, "KILLED")
        return len(dead)

    def log_champion(
        self,
        run_id: str,
        model: Any,
        preprocessing: Mapping[str, Any],
        *,
        registered_name: str | None,
        example: tuple[Any, dict[str, Any] | None],
        alias: str = CHAMPION,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> str:
        """Log `model` (in the data's units) as a pyfunc that serves raw requests to
        the trial's run, register a version (with `description` and `tags`), point
        `alias` at it; returns the logged model's URI. `example`: a raw request and
        its params, for the signature and the input example. `registered_name` None:
        logged to the run alone (a Pareto-front trial that is not champion). `force`:
        the alias moves whatever it points at (`promote`)."""
        signature, input_example = served_signature(model, preprocessing, example)
        mlflow.set_tracking_uri(self.tracking_uri)
        with tempfile.TemporaryDirectory() as tmp:
            files = save_model_files(Path(tmp), model, preprocessing)

            def log() -> Any:  # cut short: logged again (at worst, one more version)
                with mlflow.start_run(run_id=run_id, nested=True):
                    return mlflow.pyfunc.log_model(
                        name="model",
                        signature=signature,
                        input_example=input_example,
                        registered_model_name=registered_name,
                        **pyfunc_parts(files),
                    )

            info = asked_again(log)
        if registered_name is None:
            return str(info.model_uri)
        version = str(info.registered_model_version)
        if description:
            self.client.update_model_version(registered_name, version, description=description)
        for key, value in (tags or {}).items():
            self.client.set_model_version_tag(registered_name, version, key, str(value))
        self.promote(registered_name, alias, version, force=force)
        return str(info.model_uri)

    def promote(self, name: str, alias: str, version: str, *, force: bool = False) -> bool:
        """Point `alias` at `version` unless it points at a better version already:
        workers that finish together each register their new best, in any order, and
        the best of them must keep the alias (`force`: whatever it points at, for a
        champion chosen by more than its objective). Returns whether the alias moved."""
        if force:
            self.client.set_registered_model_alias(name, alias, version)
            return True
        new = _objective(self.client.get_model_version(name, version))
        try:
            current = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:  # no such alias yet
            current = None
        if current is not None and current.version == version:
            return False
        held = _objective(current) if current is not None else None
        if held is not None and new is not None and held <= new:
            return False
        self.client.set_registered_model_alias(name, alias, version)
        return True

    def promote_run(
        self, name: str, run_id: str, alias: str = CHAMPION, *, force: bool = False
    ) -> bool:
        """`promote` the version registered from the run `run_id`, if there is one."""
        versions = self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        return bool(versions) and self.promote(name, alias, str(versions[0].version), force=force)


_FLUSH_EVERY_S = 10.0
_MAX_BATCH = 1000


@dataclass
class _Pending:
    """Buffered metric rows of one run, and when the buffer was started."""

    rows: list[Metric] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


def _objective(version: Any) -> float | None:
    """A version's validation objective, if it has one (a refit has none: it takes
    its alias whatever it scores)."""
    value = version.tags.get(OBJECTIVE_TAG)
    return float(value) if value is not None else None
