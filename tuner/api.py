"""The Python API: what a notebook or a script uses, and what the CLI wraps.

    import tuner

    result = tuner.tune(frame, space=my_space, target="load", horizon=24, trials=20)
    result.best                     # trial, params, validation and test metrics
    result.trials()                 # one row per trial (pandas)
    path = result.export("exports/load")
    tuner.load_bundle(path).predict(history)

`dataset` is a built-in name, a file or definition path, a pandas DataFrame
(a forecasting table) or NumPy arrays `(X, y)` (classification sequences);
frames and arrays are written into the study's folder first, so the worker
processes and the study's fingerprint read a file. `space` is a built-in name,
a `.py` path, or a function `space(hp, data)` defined with `def` (its source
is written beside the data). Bad input raises `tuner.InputError`, a
`ValueError` whose message names keyword arguments rather than CLI flags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd

from tuner.config import OPTIONS, TuneConfig
from tuner.devices import import_keras_quietly
from tuner.engine.runner import run_tune
from tuner.errors import InputError, Opt
from tuner.paths import STAGING_DIR
from tuner.report.console import quiet_libraries
from tuner.stores import mask_secrets
from tuner.study import records
from tuner.study.storage import has_trials, load_study
from tuner.study.summary import champion, summarize, trial_rows
from tuner.tasks.base import get_task

if TYPE_CHECKING:  # the bundle module loads Keras: imported where a bundle is opened
    from tuner.export.bundle import Bundle

_OPTIONS = set(OPTIONS) - {"dataset", "space", "study"}  # tune's keyword options


@dataclass(frozen=True)
class TuneResult:
    """A study after `tune` (or opened with `open_study`): its trials, best trial and
    baselines, the figures, and `export`."""

    study: optuna.Study
    storage: str
    tracking_uri: str

    @property
    def summary(self) -> dict[str, Any]:
        """What `tuner tune --json` prints: counts, best trial, metrics, baselines."""
        return summarize(
            self.study,
            storage=mask_secrets(self.storage),
            tracking_uri=mask_secrets(self.tracking_uri),
        )

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        """The champion: the complete trial with the lowest validation objective (among
        those meeting `constraint`, within 1 % of it and lowest in `pick`'s measure)."""
        best = champion(self.study)
        if best is None:
            raise ValueError(f"study {self.study.study_name!r} has no complete feasible trial")
        return best

    @property
    def best(self) -> dict[str, Any]:
        """The best trial's number, parameters, validation and test metrics."""
        s = self.summary
        return {
            "trial": s["best_trial"],
            "params": s["best_params"],
            "val": s["best_val"],
            "test": s["best_test"],
        }

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        """Naive forecasts or unigram model on the same validation and test targets."""
        return dict(records.get(self.study, records.BASELINES, None) or {})

    def trials(self) -> pd.DataFrame:
        """One row per trial: number, state, value, duration, epochs and stop reason,
        then one column per parameter (`params_units_0`, ...) and per scalar trial
        attribute (`user_attrs_val_mse`, ...), as Optuna's `trials_dataframe` names them."""
        rows = trial_rows(self.study)
        for row, t in zip(rows, self.study.get_trials(deepcopy=False), strict=True):
            row.update({f"params_{k}": v for k, v in row.pop("params").items()})
            row.update(
                {
                    f"user_attrs_{k}": v
                    for k, v in sorted(t.user_attrs.items())
                    if isinstance(v, str | int | float | bool)
                }
            )
        return pd.DataFrame(rows)

    def best_model(self) -> Model:
        """The champion, loaded in memory as `load_bundle(result.export(...))` would load
        it, with nothing left on disk: `.model` is the Keras model, `.predict` reads
        raw data (KerasTuner's `get_best_models()[0]`, with its preprocessing)."""
        with tempfile.TemporaryDirectory() as tmp:
            return load_bundle(self.export(Path(tmp) / "bundle"))

    def export(
        self,
        path: str | Path,
        *,
        formats: tuple[str, ...] = ("keras",),
        refit: bool = False,
        trial: int | None = None,
    ) -> Path:
        """Write the champion's bundle (or trial `trial`'s) to `path` (a new or empty
        folder)."""
        from tuner.export.bundle import export_study  # deferred: Keras, as in load_bundle

        _quiet_keras()
        return export_study(
            self.study,
            out=Path(path),
            formats=formats,
            tracking_uri=self.tracking_uri,
            refit=refit,
            trial=trial,
        )

    def figures(self) -> dict[str, Any]:
        """The study's figures by name (matplotlib), as the notebook shows them."""
        from tuner import analysis  # deferred: matplotlib, needed only here

        _quiet_keras()  # the best model's figure loads it
        study = self.study
        out = {"optimization_history": analysis.optimization_history(study)}
        if len(study.directions) > 1:  # --objectives
            out["pareto_front"] = analysis.front_figure(study)
        if len(self.study.trials) >= 2:
            out["param_importances"] = analysis.param_importances(study)
        out["learning_curves"] = analysis.learning_curves(study, self.tracking_uri)
        out["best_model"] = analysis.best_model_figure(study, self.tracking_uri)
        return out


@dataclass(frozen=True)
class Model:
    """An exported bundle, checked and loaded: `predict` in the data's own units."""

    bundle: Bundle

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def metadata(self) -> dict[str, Any]:
        """Study, trial, parameters, metrics, data fingerprint, versions, file hashes."""
        return self.bundle.metadata

    @property
    def preprocessing(self) -> dict[str, Any]:
        """What the model needs to read new data: scaler, columns, classes or vocabulary."""
        return self.bundle.preprocessing

    @property
    def model(self) -> Any:
        """The Keras model (inputs on the training scale)."""
        return self.bundle.model

    @property
    def seq_len(self) -> int:
        return int(self.bundle.seq_len)

    def predict(
        self,
        data: pd.DataFrame | np.ndarray | str,
        *,
        lengths: np.ndarray | None = None,
        length: int = 200,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> pd.DataFrame | str:
        """Forecasting: a history table -> the next `horizon` rows. Classification:
        sequences (samples, steps, features) -> label and class probabilities.
        Character model: a prompt -> the prompt continued by `length` characters."""
        options = {"lengths": lengths, "length": length, "temperature": temperature, "seed": seed}
        return get_task(self.task).predict(self.bundle, data, **options)


def tune(
    dataset: str | Path | pd.DataFrame | tuple[np.ndarray, np.ndarray] = "co2",
    space: str | Path | Callable[[Any, Any], None] | None = None,
    *,
    study: str | None = None,
    **options: Any,
) -> TuneResult:
    """Create or resume a study and run its missing trials; `options` are the
    `tuner tune` options as keyword arguments (`trials=20`, `max_epochs=10`,
    `target="load"`, `storage=...`, ...)."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(
            f"{Opt(unknown[0])}: not an option of tune; the options are "
            f"{', '.join(sorted(_OPTIONS))}."
        )
    for key in ("target", "covariates"):
        if isinstance(options.get(key), str):
            options[key] = (options[key],)
    if options.get("split") is not None:
        options["split"] = tuple(options["split"])
    name = study or _default_study(dataset)
    config = TuneConfig(study=name, **options)  # options checked before anything is written
    # A study with trials keeps the data and space it was tuned on; before its
    # first trial, staged inputs may still be replaced (a corrected space).
    keep = has_trials(name, config.storage_url)
    return run(
        dataclasses.replace(
            config,
            dataset=_stage_dataset(dataset, name, keep=keep),
            space=_stage_space(space, name, keep=keep),
        )
    )


def _with_options(function: Callable[..., TuneResult]) -> None:
    """`tune`'s signature and help as a notebook shows them (`tune?`, Shift-Tab):
    every option of `TuneConfig` as a keyword with its default and its help, made
    from the one declaration in tuner/config.py."""
    defaults, declared = TuneConfig(), {f.name: f for f in fields(TuneConfig)}
    given = [p for p in inspect.signature(function).parameters.values() if p.kind != p.VAR_KEYWORD]
    options = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=getattr(defaults, name),
            annotation=declared[name].type,
        )
        for name in OPTIONS
        if name in _OPTIONS
    ]
    function.__signature__ = inspect.Signature([*given, *options])  # type: ignore[attr-defined]
    # The help in the API's words (`sampler=grid`, not `--sampler grid`), as errors are.
    lines = [
        f"    {name}: {OPTIONS[name].text(flags=False)}" for name in OPTIONS if name in _OPTIONS
    ]
    function.__doc__ = f"{function.__doc__}\n\n    Options:\n\n" + "\n".join(lines)


_with_options(tune)


def run(config: TuneConfig, *, role: str = "tune") -> TuneResult:
    """Run the study of a resolved configuration (what `tuner tune` does). Optuna's
    and MLflow's info logs are silenced, as in the CLI: the tuner reports each trial."""
    quiet_libraries()
    run_tune(config, role=role)
    return open_study(config.study_name, storage=config.storage_url, tracking_uri=config.tracking)


def open_study(
    name: str, *, storage: str | None = None, tracking_uri: str | None = None
) -> TuneResult:
    """A study already in the storage, to read or export (no trial runs)."""
    defaults = TuneConfig(storage=storage, tracking_uri=tracking_uri)
    url = defaults.storage_url
    return TuneResult(load_study(name, url), storage=url, tracking_uri=defaults.tracking)


def load_bundle(path: str | Path) -> Model:
    """An exported bundle, its files checked against their hashes, loaded in safe mode."""
    # Deferred: Keras loads only where a model is loaded; `tune` runs its trials in
    # worker processes and never imports it in the calling process.
    from tuner.export.bundle import load_bundle as load

    _quiet_keras()
    return Model(load(Path(path)))


def _quiet_keras() -> None:
    """Keras, imported once without its backend's start-up lines (C++ log lines such
    as a CPU machine's "cuInit" error, which a notebook cell would show as output)."""
    if "keras" not in sys.modules:
        import_keras_quietly()


def _default_study(dataset: Any) -> str:
    if isinstance(dataset, pd.DataFrame):
        return "frame"
    if isinstance(dataset, tuple | list):
        return "arrays"
    return TuneConfig(dataset=str(dataset)).study_name


def _stage_dataset(dataset: Any, study: str, *, keep: bool) -> str:
    """A DataFrame or arrays written to the study's folder; a name or path as it is."""
    if isinstance(dataset, str | Path):
        return str(dataset)
    if isinstance(dataset, pd.DataFrame):
        write = lambda p: dataset.to_parquet(p, index=False)  # noqa: E731
        return str(_stage(study, "dataset.parquet", write, keep=keep))
    if isinstance(dataset, tuple | list) and len(dataset) == 2:
        x, y = (np.asarray(a) for a in dataset)
        return str(_stage(study, "dataset.npz", lambda p: np.savez(p, X=x, y=y), keep=keep))
    raise InputError(
        f"{Opt('dataset')}: a name, a path, a pandas DataFrame or (X, y) arrays, but got "
        f"{type(dataset).__name__}.",
        option="dataset",
    )


def _stage_space(space: Any, study: str, *, keep: bool) -> str | None:
    """A space function's source written to the study's folder as a space module."""
    if space is None or isinstance(space, str | Path):
        return None if space is None else str(space)
    if not inspect.isfunction(space) or space.__name__ == "<lambda>":
        raise InputError(
            f"{Opt('space')}: a name, a .py path or a function defined with def, but got "
            f"{space!r}.",
            option="space",
        )
    try:
        source = textwrap.dedent(inspect.getsource(space))
    except (OSError, TypeError):
        raise InputError(
            f"{Opt('space')}: the source of {space.__name__} cannot be read; define it in a "
            "file or a notebook cell.",
            option="space",
        ) from None
    if space.__name__ != "space":
        source += f"\n\nspace = {space.__name__}\n"
    return str(_stage(study, "space.py", lambda p: p.write_text(source), keep=keep))


def _stage(study: str, name: str, write: Callable[[Path], Any], *, keep: bool) -> Path:
    """Write a study's input; a study with trials (`keep`) must be given the same
    content, never a replacement."""
    target = STAGING_DIR / study / name
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        write(staged)
        if keep and target.is_file() and _sha256(target) != _sha256(staged):
            raise InputError(
                f"{Opt('study', study)}: was tuned on a different {Path(name).stem} ({target}); "
                f"pass a new {Opt('study')} name for this one.",
                option="study",
            )
        if not target.is_file() or _sha256(target) != _sha256(staged):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staged, target)
    return target.resolve()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
