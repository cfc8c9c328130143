"""The resolved configuration of a `tuner tune` run, checked once, here."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import InitVar, asdict, dataclass
from pathlib import Path
from typing import Any

from tuner.devices import PRECISIONS
from tuner.errors import InputError, causes
from tuner.paths import DEFAULT_STORAGE, DEFAULT_TRACKING_URI, MODEL_FILE

SAMPLERS = ("tpe", "random", "gp", "cmaes", "grid")
PRUNERS = ("hyperband", "median", "none")
ENGINES = ("optuna", "keras-tuner")
KT_TUNERS = ("hyperband", "bayesian", "random")
_MAX_ENSEMBLE = 10
DEFAULT_TRIALS = 25
MAX_SEED = 2**31 - 1  # seed + trial number must stay a valid 32-bit seed for every library
MAX_WORKERS = 64  # local worker processes
_MAX_WARM_START = 100


@dataclass(frozen=True, kw_only=True)
class TuneConfig:
    """Defaults give a good run on the default dataset; every field is a CLI option."""

    dataset: str = "co2"
    space: str | None = None
    study: str | None = None
    trials: int | None = None  # None: DEFAULT_TRIALS, or the whole grid (see n_trials)
    timeout: float | None = None
    max_epochs: int = 20
    patience: int = 4
    sampler: str = "tpe"
    pruner: str = "hyperband"
    storage: str | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    seed: int = 42
    workers: int | None = None  # None: --trials-per-gpu per GPU chosen, else 1
    gpus: str | None = None  # all (default) | none | ids like 0,1
    trials_per_gpu: int | None = None  # worker processes per GPU; None: from the model size
    precision: str = "float32"
    engine: str = "optuna"  # keras-tuner: KerasTuner's search over the same space
    kt_tuner: str = "hyperband"  # the KerasTuner algorithm when engine is keras-tuner
    epoch_budget: int | None = None  # no trial starts once the study has run this many epochs
    # Average the K best trials into one champion if it validates better; None: the
    # data's default (DatasetInfo.default_ensemble: 3 on small sets not cross-validated).
    ensemble: int | None = None
    warm_start: str | None = None  # STUDY or STORAGE_URL#STUDY: enqueue its best configurations
    warm_start_trials: int = 5  # how many of them
    init_from: str | None = None  # bundle folder or models:/ URI whose weights trials start from
    # Dataset options (None: the dataset definition's value or the default).
    horizon: int | None = None
    target: tuple[str, ...] | None = None
    covariates: tuple[str, ...] | None = None
    time_col: str | None = None
    split: tuple[float, ...] | None = None
    fill: str | None = None
    seasonal_period: int | None = None
    cv: int | None = None

    # A study read back from storage keeps the name it was created with (made before
    # the name rule, it can still be exported or joined); new studies are checked.
    existing: InitVar[bool] = False

    def __post_init__(self, existing: bool) -> None:
        if not existing:
            if self.study is not None:
                check_name("--study", self.study)
            else:
                check_name("--study", self.study_name, derived=f"--dataset {self.dataset}")
        if self.trials is not None:
            _at_least("--trials", self.trials, 1)
        _at_least("--max-epochs", self.max_epochs, 1)
        _at_least("--patience", self.patience, 1)
        if self.trials_per_gpu is not None:
            _at_least("--trials-per-gpu", self.trials_per_gpu, 1)
            if self.workers is not None:
                raise InputError(
                    f"--trials-per-gpu {self.trials_per_gpu} and --workers {self.workers} both "
                    "set the number of worker processes; pass one of them."
                )
            if self.trials_per_gpu > MAX_TRIALS_PER_GPU:
                raise InputError(
                    f"--trials-per-gpu must be at most {MAX_TRIALS_PER_GPU}, but got "
                    f"{self.trials_per_gpu}; more processes than that share one GPU's "
                    "memory and cores without gain."
                )
        if self.workers is not None:
            _at_least("--workers", self.workers, 1)
            if self.workers > MAX_WORKERS:
                raise InputError(
                    f"--workers must be at most {MAX_WORKERS} local processes, but got "
                    f"{self.workers}; for more, start `tuner worker` on more machines."
                )
        if not 0 <= self.seed <= MAX_SEED - 1_000_000:
            raise InputError(
                f"--seed must be 0-{MAX_SEED - 1_000_000} (trials add their number to it), "
                f"but got {self.seed}; pass e.g. --seed 42."
            )
        _one_of("--precision", self.precision, PRECISIONS)
        _one_of("--engine", self.engine, ENGINES)
        _one_of("--kt-tuner", self.kt_tuner, KT_TUNERS)
        if self.ensemble is not None and (
            self.ensemble == 1 or not 0 <= self.ensemble <= _MAX_ENSEMBLE
        ):
            raise InputError(
                f"--ensemble must be 0 (off) or 2-{_MAX_ENSEMBLE} trials, but got "
                f"{self.ensemble}; pass --ensemble 3, or leave it out."
            )
        if not 1 <= self.warm_start_trials <= _MAX_WARM_START:
            raise InputError(
                f"--warm-start-trials must be 1-{_MAX_WARM_START}, but got "
                f"{self.warm_start_trials}; pass e.g. --warm-start-trials 5."
            )
        if self.warm_start is not None and self.sampler == "grid":
            raise InputError(
                f"--warm-start {self.warm_start}: a grid search runs every point of the space "
                "already; leave out --warm-start, or use --sampler tpe."
            )
        if self.engine == "keras-tuner" and (self.warm_start or self.init_from):
            option = "--warm-start" if self.warm_start else "--init-from"
            raise InputError(
                f"{option} works with the optuna engine, but got --engine keras-tuner; "
                f"leave out {option}, or use --engine optuna."
            )
        if self.engine == "keras-tuner" and self.sampler == "grid":
            raise InputError(
                "--sampler grid is an Optuna sampler, but got --engine keras-tuner (which has "
                "its own --kt-tuner); use --engine optuna for a grid search."
            )
        if self.init_from is not None:
            _check_init_from(self.init_from)
        if self.epoch_budget is not None:
            _at_least("--epoch-budget", self.epoch_budget, 1)
        if self.engine == "keras-tuner" and (self.workers or 1) > 1:
            raise InputError(
                f"--engine keras-tuner runs one worker process, but got --workers {self.workers}; "
                "use --workers 1, or the optuna engine for parallel workers."
            )
        if self.horizon is not None:
            _at_least("--horizon", self.horizon, 1)
        if self.seasonal_period is not None:
            _at_least("--seasonal-period", self.seasonal_period, 1)
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise InputError(
                f"--timeout must be positive seconds, but got {self.timeout}; omit it for no limit."
            )
        _one_of("--sampler", self.sampler, SAMPLERS)
        _one_of("--pruner", self.pruner, PRUNERS)
        if self.sampler == "gp":
            _require_torch()

    @property
    def n_trials(self) -> int:
        """Finished trials wanted: as given, else DEFAULT_TRIALS (a grid search's runner
        sets its grid's size before any trial)."""
        return DEFAULT_TRIALS if self.trials is None else self.trials

    @property
    def study_name(self) -> str:
        return self.study or self.dataset.rsplit("/", 1)[-1].split(".")[0]

    @property
    def storage_url(self) -> str:
        return storage_url(self.storage)

    @property
    def tracking(self) -> str:
        return tracking_uri(self.tracking_uri)

    def dataset_options(self) -> dict[str, Any]:
        """The options that override the dataset definition, for `resolve_dataset`."""
        return {
            "target": self.target,
            "covariates": self.covariates,
            "time_col": self.time_col,
            "horizon": self.horizon,
            "split": self.split,
            "fill": self.fill,
            "seasonal_period": self.seasonal_period,
            "cv": self.cv,
        }

    def resolved(self) -> dict[str, Any]:
        """Every setting with the defaults and environment filled in (secrets still present)."""
        out = asdict(self)
        out.update(
            study=self.study_name,
            storage=self.storage_url,
            tracking_uri=self.tracking,
            experiment=self.experiment or self.study_name,
        )
        return out


def storage_url(given: str | None) -> str:
    """The Optuna storage: as given, else $TUNER_STORAGE, else the local SQLite file."""
    return given or os.environ.get("TUNER_STORAGE") or DEFAULT_STORAGE


def tracking_uri(given: str | None) -> str:
    """The MLflow tracking URI: as given, else $MLFLOW_TRACKING_URI, else the local store."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# user:password@ in a URL (the password may itself hold "@": up to the last one),
# and secret query parameters (?password=..., &token=...).
_PASSWORD = re.compile(r"(://[^:/@\s'\"]+:)[^\s'\"]*@")
_SECRET_QUERY = re.compile(
    r"([?&](?:password|passwd|pwd|token|access_token|api_key|apikey|secret)=)[^&\s'\"]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Hide the password in URLs such as postgresql://user:secret@host/db."""
    return _SECRET_QUERY.sub(r"\1***", _PASSWORD.sub(r"\1***@", text))


def tracking_server(uri: str) -> bool:
    """Whether the MLflow tracking URI is a server (over HTTP), not a local store."""
    return uri.startswith(("http://", "https://"))


def make_folder(folder: Path, *, option: str) -> None:
    """The folder of a local store, created if needed; a path through a regular file
    or an unwritable folder is an input error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(
            f"{option}: {folder} cannot be a folder: a file lies on that path; pass a path "
            "under a folder."
        ) from None
    except PermissionError:
        raise InputError(f"{option}: cannot create {folder} (permission denied).") from None
    if not os.access(folder, os.W_OK):
        raise InputError(
            f"{option}: the folder {folder} is not writable; make it writable or choose "
            "another path."
        )


# Seconds a command waits for a local SQLite store another process holds locked
# (a long write, an open `sqlite3` shell) before it says so.
LOCK_WAIT_S = 60.0


def lock_wait_s() -> float:
    return LOCK_WAIT_S


def check_sqlite(path: Path, *, option: str, table: str, kind: str) -> None:
    """A local store file that exists must be an SQLite database that is empty or holds
    this kind of store (`table`: one of its tables): a damaged file or another
    application's database is refused before anything writes to it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    fix = "pass a new file, or restore this one from a copy"
    # Read through SQLite only: closing any other descriptor of the file would drop
    # every POSIX lock this process holds on it, an open store connection's too.
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=lock_wait_s())) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    except sqlite3.OperationalError as e:
        if "locked" in str(e):
            raise InputError(_locked(option, str(path), lock_wait_s())) from None
        raise InputError(f"{option}: {path} cannot be read as SQLite ({e}); {fix}.") from None
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise InputError(
                f"{option}: {path} is not an SQLite database (damaged, or another kind of "
                f"file); {fix}."
            ) from None
        raise InputError(f"{option}: {path} cannot be read as SQLite ({e}); {fix}.") from None
    tables = sorted(r[0] for r in rows)
    if tables and table not in tables:
        raise InputError(
            f"{option}: {path} is another application's SQLite database (tables "
            f"{', '.join(tables[:4])}), not {kind}; pass a new file."
        )


@contextmanager
def store_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock beside a local database while it is created or migrated:
    two first runs at once must not both create its tables."""
    lock = database.with_name(database.name + ".lock")
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def locked_store(option: str, store: str, *, waited: float) -> Iterator[None]:
    """Say in one line that `store` (given by `option`) is locked by another process,
    where SQLite gave up waiting `waited` seconds for it ("database is locked"
    anywhere in the exception's chain)."""
    try:
        yield
    except Exception as e:
        if not any("database is locked" in str(cause) for cause in causes(e)):
            raise
        shown = mask_secrets(store).removeprefix("sqlite:///")  # a local store: its path
        raise InputError(_locked(option, shown, waited)) from None


def _locked(option: str, store: str, waited: float) -> str:
    return (
        f"{option}: {store} is locked by another process (waited {waited:g} s); let it "
        "finish or stop it, then run the command again."
    )


# Study names become MLflow experiment and registered-model names and parts of
# file paths (artifacts, exports): one rule for all of them, checked before
# anything is created. A slash or `..` would leave the store's folder.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(option: str, value: str, *, derived: str | None = None) -> None:
    """Refuse a study name outside NAME_RULE (`derived`: the option it was taken from)."""
    if _NAME.fullmatch(value):
        return
    fixed = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("._-")[:40] or "my-study"
    shown = repr(value if len(value) <= 40 else value[:40] + "...")
    where = f"the study name {shown} taken from {derived}" if derived else shown
    if len(value) > 100:
        where += f" ({len(value)} characters)"
    raise InputError(
        f"{option}: {where} is not a valid name: a name is {NAME_RULE}; pass e.g. --study {fixed}."
    )


def _at_least(option: str, value: int, low: int) -> None:
    if value < low:
        raise InputError(f"{option} must be at least {low}, but got {value}.")


def _one_of(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{option} must be one of {', '.join(allowed)}, but got {value!r}.")


MAX_TRIALS_PER_GPU = 16

MODEL_URI_SCHEMES = ("models:/", "runs:/")  # --init-from: a logged or registered model


def _check_init_from(source: str) -> None:
    if source.startswith(MODEL_URI_SCHEMES):
        return
    if not (Path(source) / MODEL_FILE).is_file():
        raise InputError(
            f"--init-from {source}: not an exported bundle (no {MODEL_FILE} in that folder); "
            "give a folder written by `tuner export`, or a models:/NAME@champion URI."
        )


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError(
            "--sampler gp: Optuna's GPSampler needs PyTorch, which is not installed; "
            "pip install torch, or use --sampler tpe."
        ) from None
