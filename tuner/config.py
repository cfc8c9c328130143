"""The resolved configuration of a `tuner tune` run, checked once, here."""

from __future__ import annotations

from dataclasses import InitVar, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tuner.devices import PRECISIONS
from tuner.errors import InputError, Opt
from tuner.objectives import (
    CONSTRAINT_HELP,
    MEASURES,
    OBJECTIVES_HELP,
    PICK_HELP,
    Bound,
    check_constraints,
    check_measures,
    check_objectives,
    parse_bound,
)
from tuner.options import (
    FUSE_AUTO,
    Option,
    at_least,
    at_most,
    between,
    check_fuse,
    columns,
    fuse_size,
    integer,
    number,
    one_of,
    option,
    positive_seconds,
    split_fractions,
)
from tuner.paths import DEFAULT_STORAGE, MODEL_FILE
from tuner.search_engines import ENGINES, Engine
from tuner.stores import check_name, storage_url, tracking_uri

SAMPLERS = ("tpe", "random", "gp", "cmaes", "grid")
PRUNERS = ("hyperband", "median", "none")
KT_TUNERS = ("hyperband", "bayesian", "random")
DEFAULT_TRIALS = 25
MAX_SEED = 2**31 - 1  # seed + trial number must stay a valid 32-bit seed for every library
MAX_WORKERS = 64  # local worker processes
MAX_TRIALS_PER_GPU = 16
_MAX_ENSEMBLE = 10
_MAX_WARM_START = 100
MAX_FOLDS = 20
# Small classification sets: those with fewer training plus validation sequences
# than SMALL_SET are scored by stratified K-fold cross-validation (DEFAULT_FOLDS)
# unless the definition or --cv says, where their steps (summed over those
# sequences) are at most CV_STEPS: K trainings of a trial cost K times one, and on
# long series (ACSF1: 100 x 1,460 steps, an LSTM-FCN round 10-25 s on two cores)
# five of them leave each fold a round or two of a timed trial's share. Longer
# small sets are selected on the validation split, and average their best trials
# by default (SMALL_SET_ENSEMBLE: the models the trials kept, champion where it
# validates better; no training added).
SMALL_SET = 200
CV_STEPS = 50_000
DEFAULT_FOLDS = 5
SMALL_SET_ENSEMBLE = 3


def _check_seed(name: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED - 1_000_000:
        raise InputError(
            f"{Opt(name)} must be 0-{MAX_SEED - 1_000_000} (trials add their number to it), "
            f"but got {value}; pass e.g. {Opt(name, 42)}.",
            option=name,
        )


def _check_ensemble(name: str, value: int) -> None:
    if value == 1 or not 0 <= value <= _MAX_ENSEMBLE:
        raise InputError(
            f"{Opt(name)} must be 0 (off) or 2-{_MAX_ENSEMBLE} trials, but got {value}; "
            f"pass {Opt(name, 3)}, or leave it out.",
            option=name,
        )


def _check_sampler(name: str, value: str) -> None:
    one_of(SAMPLERS)(name, value)
    if value == "gp":
        _require_torch()


def _check_init_from(name: str, source: str) -> None:
    if source.startswith(MODEL_URI_SCHEMES):
        return
    if not (Path(source) / MODEL_FILE).is_file():
        raise InputError(
            f"{Opt(name, source)}: not an exported bundle (no {MODEL_FILE} in that folder); "
            "give a folder written by `tuner export`, or a models:/NAME@champion URI.",
            option=name,
        )


_DATA = "dataset"  # the options that override the dataset definition


@dataclass(frozen=True, kw_only=True)
class TuneConfig:
    """Every option of a study (`tuner tune --help` and `tuner.tune(...)` are made
    from these fields); the defaults give a good run on the default dataset."""

    dataset: str = option("co2", "built-in name or file path", metavar="NAME|PATH")
    space: str | None = option(
        None,
        "built-in search space name or .py path (default: the space named after the dataset's "
        "task: forecasting, classification or char_lm)",
    )
    study: str | None = option(None, "study name (default: the dataset name)")
    trials: int | None = option(
        None,
        lambda: (
            f"total finished trials wanted (resumes count; default: {DEFAULT_TRIALS}, or the "
            f"whole grid with {Opt('sampler', 'grid')})"
        ),
        parse=integer,
        check=at_least(1),
    )
    timeout: float | None = option(
        None,
        "stop starting trials after SECONDS, worker start-up not counted (default: no limit)",
        parse=number,
        check=positive_seconds,
    )
    max_epochs: int = option(
        20,
        "epochs a trial may train (more for tiny training sets, so each gets enough steps)",
        parse=integer,
        check=at_least(1),
    )
    patience: int = option(
        4,
        "epochs without improvement before early stopping ends a trial",
        parse=integer,
        check=at_least(1),
    )
    sampler: str = option(
        "tpe",
        " | ".join(SAMPLERS) + " (grid: every point of a discrete space once)",
        check=_check_sampler,
    )
    pruner: str = option("hyperband", " | ".join(PRUNERS), check=one_of(PRUNERS))
    storage: str | None = option(
        None, f"Optuna storage URL (default $TUNER_STORAGE or {DEFAULT_STORAGE})"
    )
    tracking_uri: str | None = option(
        None, "MLflow tracking URI (default $MLFLOW_TRACKING_URI or local store)"
    )
    experiment: str | None = option(None, "MLflow experiment (default: the study name)")
    seed: int = option(
        42,
        "seed of the sampler and of each trial's training (with the trial number)",
        parse=integer,
        check=_check_seed,
    )
    workers: int | None = option(
        None,
        "local worker processes (default: one per GPU, or 1)",
        parse=integer,
        check=at_most(
            MAX_WORKERS, (" local processes", "for more, start `tuner worker` on more machines")
        ),
    )
    gpus: str | None = option(None, "GPUs to use: all (default), none, or ids like 0,1")
    trials_per_gpu: int | None = option(
        None,
        "worker processes sharing each GPU, with memory growth (default: up to 4, from the "
        "size of the space's largest model and the GPU's memory; refused without a GPU)",
        parse=integer,
        check=at_most(
            MAX_TRIALS_PER_GPU,
            ("", "more processes than that share one GPU's memory and cores without gain"),
        ),
    )
    precision: str = option(
        "float32", " | ".join(PRECISIONS) + " (Keras policy)", check=one_of(PRECISIONS)
    )
    fuse: int | str = option(
        1,
        lambda: (
            "train K trials that share their model's structure as one compiled program, each "
            "still its own trial and run (JAX backend; others, cross-validation and "
            f"{Opt('init_from')} train unfused; 1: off, the default; {FUSE_AUTO}: the size "
            "where doubling the group stopped speeding its steps, timed at start-up)"
        ),
        parse=fuse_size,
        check=check_fuse,
        metavar="K|auto",
    )
    objectives: tuple[str, ...] | None = option(
        None,
        OBJECTIVES_HELP,
        parse=columns,
        check=check_objectives,
        metavar="NAMES",
    )
    constraint: tuple[str, ...] | None = option(
        None,
        CONSTRAINT_HELP,
        parse=columns,
        check=check_constraints,
        metavar="BOUNDS",
    )
    pick: str | None = option(
        None,
        PICK_HELP,
        check=one_of(MEASURES),
    )
    engine: str = option(
        "optuna",
        "; ".join(f"{e.name}: {e.summary}" for e in ENGINES.values()),
        check=one_of(tuple(ENGINES)),
    )
    kt_tuner: str = option(
        "hyperband",
        lambda: " | ".join(KT_TUNERS) + f" ({Opt('engine', 'keras-tuner')})",
        check=one_of(KT_TUNERS),
    )
    epoch_budget: int | None = option(
        None,
        "start no trial once the study's trials have trained this many epochs in all "
        "(default: no budget)",
        parse=integer,
        check=at_least(1),
    )
    ensemble: int | None = option(
        None,
        "average the K best trials into one champion when that validates better (every "
        "task: forecasts, class probabilities, character logits; 0: off; default: "
        f"{SMALL_SET_ENSEMBLE} on classification sets under {SMALL_SET} training sequences "
        "that are not cross-validated, optuna engine; else off)",
        parse=integer,
        check=_check_ensemble,
    )
    warm_start: str | None = option(
        None, "STUDY or STORAGE_URL#STUDY: run its best configurations first (default: none)"
    )
    warm_start_trials: int = option(
        5,
        lambda: f"how many of the {Opt('warm_start')} study's best configurations to enqueue",
        parse=integer,
        check=between(1, _MAX_WARM_START, example=5),
    )
    init_from: str | None = option(
        None,
        "exported bundle folder or models:/NAME@champion: trials whose layers match start "
        "from its weights and fine-tune (default: none)",
        check=_check_init_from,
    )
    target: tuple[str, ...] | None = option(
        None, "target column(s), comma-separated", parse=columns, group=_DATA
    )
    covariates: tuple[str, ...] | None = option(
        None, "input-only columns, comma-separated", parse=columns, group=_DATA
    )
    time_col: str | None = option(
        None, "timestamp column (checked: parsable, sorted, unique)", group=_DATA
    )
    horizon: int | None = option(
        None,
        "forecast horizon in steps (default: the dataset definition's, else 1)",
        parse=integer,
        check=at_least(1),
        group=_DATA,
    )
    seasonal_period: int | None = option(
        None,
        "season length for the seasonal naive baseline",
        parse=integer,
        check=at_least(1),
        group=_DATA,
    )
    split: tuple[float, ...] | None = option(
        None,
        "train,val,test as fractions (0.7,0.15,0.15) or row borders (8640,11520,14400)",
        parse=split_fractions,
        group=_DATA,
    )
    fill: str | None = option(
        None, "fill missing values instead of failing: interpolate | ffill", group=_DATA
    )
    cv: int | None = option(
        None,
        f"cross-validation folds a trial's value is the mean over (0: off, or 2-{MAX_FOLDS}; "
        f"default: {DEFAULT_FOLDS} for classification sets under {SMALL_SET} training "
        f"sequences whose steps sum to at most {CV_STEPS:,}, else off)",
        parse=integer,
        group=_DATA,
    )

    # A study read back from storage keeps the name it was created with (made before
    # the name rule, it can still be exported or joined); new studies are checked.
    existing: InitVar[bool] = False

    def __post_init__(self, existing: bool) -> None:
        if not existing:
            if self.study is not None:
                check_name("study", self.study)
            else:
                check_name("study", self.study_name, derived=Opt("dataset", self.dataset))
        self._check_together()
        for name, declared in OPTIONS.items():
            value = getattr(self, name)
            if declared.check is not None and value is not None:
                declared.check(name, value)

    def _check_together(self) -> None:
        """The options that refuse each other (first: a conflict stands whatever the
        values, so it is the line to fix first)."""
        if self.trials_per_gpu is not None and self.workers is not None:
            raise InputError(
                f"{Opt('trials_per_gpu', self.trials_per_gpu)} and {Opt('workers', self.workers)} "
                "both set the number of worker processes; "
                "pass one of them.",
                option="trials_per_gpu",
            )
        if self.warm_start is not None and self.sampler == "grid":
            raise InputError(
                f"{Opt('warm_start', self.warm_start)}: a grid search runs every point of the "
                f"space already; leave out {Opt('warm_start')}, or use {Opt('sampler', 'tpe')}.",
                option="warm_start",
            )
        engine = ENGINES.get(self.engine)
        if engine is None:  # its own check names the engines
            return
        if not engine.warm_start and (self.warm_start or self.init_from):
            option = Opt("warm_start" if self.warm_start else "init_from")
            raise InputError(
                f"{option} works with the optuna engine, but got {Opt('engine', engine.name)}; "
                f"leave out {option}, or use {Opt('engine', 'optuna')}.",
                option=option.name,
            )
        if self.fused and (not engine.fuse or self.sampler == "grid"):
            what = Opt("engine", engine.name) if not engine.fuse else Opt("sampler", "grid")
            raise InputError(
                f"{Opt('fuse', self.fuse)} fills groups with trials the sampler draws, but got "
                f"{what}; leave out {Opt('fuse')}, or use {Opt('engine', 'optuna')} with another "
                "sampler.",
                option="fuse",
            )
        check_measures(self, engine)
        if not engine.grid and self.sampler == "grid":
            raise InputError(
                f"{Opt('sampler', 'grid')} is an Optuna sampler, but got "
                f"{Opt('engine', engine.name)} (which has its own {Opt('kt_tuner')}); use "
                f"{Opt('engine', 'optuna')} for a grid search.",
                option="sampler",
            )
        if not engine.parallel and (self.workers or 1) > 1:
            raise InputError(
                f"{Opt('engine', engine.name)} runs one worker process, but got "
                f"{Opt('workers', self.workers)}; use {Opt('workers', 1)}, or the optuna engine "
                "for parallel workers.",
                option="workers",
            )

    @property
    def search_engine(self) -> Engine:
        """The engine `--engine` names, with what it does."""
        return ENGINES[self.engine]

    @property
    def n_trials(self) -> int:
        """Finished trials wanted: as given, else DEFAULT_TRIALS (a grid search's runner
        sets its grid's size before any trial)."""
        return DEFAULT_TRIALS if self.trials is None else self.trials

    @property
    def fused(self) -> bool:
        """Whether `--fuse` asks for groups (a size above 1, or auto)."""
        return self.fuse == FUSE_AUTO or (isinstance(self.fuse, int) and self.fuse > 1)

    @property
    def multi_objective(self) -> bool:
        """Whether `--objectives` adds a measure to the validation objective."""
        return len(self.objectives or ()) > 1

    @property
    def measured(self) -> tuple[str, ...]:
        """The measures each trial records: those minimised, bounded or picked by."""
        wanted = [*(self.objectives or ())[1:], *(b.name for b in self.bounds), self.pick]
        return tuple(m for m in MEASURES if m in wanted)

    @property
    def bounds(self) -> tuple[Bound, ...]:
        return tuple(parse_bound(text) for text in self.constraint or ())

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


OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in fields(TuneConfig)}


MODEL_URI_SCHEMES = ("models:/", "runs:/")  # --init-from: a logged or registered model


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError(
            f"{Opt('sampler', 'gp')}: Optuna's GPSampler needs PyTorch, which is not installed; "
            f"pip install torch, or use {Opt('sampler', 'tpe')}.",
            option="sampler",
        ) from None
