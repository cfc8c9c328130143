"""Opening a study: load the data and the space, create or resume the Optuna study
with its sampler and pruner, check a resumed study keeps its data and space, and
read back the configuration it was created with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from tuner.config import TuneConfig
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.data.spec import Dataset
from tuner.errors import InputError, Opt
from tuner.model.params import check_space_names, check_space_values, space_min_rounds
from tuner.objectives import VALIDATION
from tuner.space import (
    SearchSpace,
    default_configuration,
    grid_points,
    load_space,
    probe_space,
)
from tuner.stores import mask_secrets
from tuner.study import records
from tuner.study.grid import GridSampler
from tuner.study.portfolio import portfolio
from tuner.study.storage import open_storage, refuse_foreign


def prepare_data(config: TuneConfig, *, isolate: bool = True) -> tuple[Dataset, SearchSpace]:
    """Load the dataset and the search space (the task's default unless one is given)
    and check the space against the data; `isolate`: run a user's space module once
    in a child process first (the processes started after that check skip it)."""
    data = load_dataset(resolve_dataset(config.dataset, **config.dataset_options()))
    space = load_space(
        config.space or _default_space(data), isolate_with=data.info if isolate else None
    )
    choices = probe_space(space, data.info)
    check_space_names(choices, task=data.spec.task, space=space.name)
    check_space_values(choices, space=space.name)
    if not config.search_engine.cross_validates and data.info.cv:
        raise InputError(
            f"{Opt('engine', config.engine)} does not cross-validate, but dataset "
            f"'{data.spec.name}' is scored over {data.info.cv} folds; pass {Opt('cv', '0')}, or "
            "use the optuna engine."
        )
    return data, space


def _default_space(data: Dataset) -> str:
    """The task's built-in space, for a study that names none."""
    name = data.info.kind.default_space
    if name is None:
        raise InputError(
            f"{Opt('space')}: task {data.spec.task!r} has no built-in search space; pass "
            f"{Opt('space', 'NAME|PATH')}, or a space function to tuner.tune."
        )
    return name


def open_study(
    config: TuneConfig,
    data: Dataset,
    space: SearchSpace,
    *,
    tracking_uri: str | None = None,
    seed_offset: int = 0,
) -> optuna.Study:
    storage = open_storage(config.storage_url, tracking_uri=tracking_uri)
    refuse_foreign(storage, config.study_name, config.storage_url)
    n_before = _existing_trials(storage, config.study_name)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        directions=["minimize"] * len(config.objectives or (VALIDATION,)),
        sampler=_sampler(
            config, sampler_seed(config.seed, n_before, seed_offset), space=space, data=data
        ),
        pruner=study_pruner(
            config,
            folds=data.info.cv,
            first_rung=space_min_rounds(probe_space(space, data.info), config.max_epochs),
        ),
        load_if_exists=True,
    )
    _check_same_study(study, config, data, space)
    return study


def sampler_seed(seed: int, trials_before: int, offset: int) -> int:
    """The sampler seed of one worker process: moves on with the trials already run (a
    resumed study does not draw its first configurations again) and differs between
    workers (`offset`: the worker's slot, and its process for `tuner worker`). The
    first worker keeps `seed + trials_before`; the others mix all three, since a sum
    let the worker at offset 1 that saw one trial fewer draw its neighbour's sequence."""
    if offset == 0:
        return seed + trials_before
    return int(np.random.SeedSequence([seed, trials_before, offset]).generate_state(1)[0])


def _existing_trials(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _check_same_study(
    study: optuna.Study, config: TuneConfig, data: Dataset, space: SearchSpace
) -> None:
    """A resumed study must keep its data and space; a new one records them."""
    identity = {
        "task": data.spec.task,
        "dataset_sha256": data.fingerprint["sha256"],
        "horizon": data.spec.horizon,
        "targets": list(data.spec.target),
        "covariates": list(data.spec.covariates),
        "split": list(data.spec.split),
        "space": space.name,
        "engine": config.engine,
        "objectives": list(config.objectives or (VALIDATION,)),
    }
    stored = records.get(study, records.IDENTITY, None)
    if stored is None:
        records.put(study, records.IDENTITY, identity)
        records.put(study, records.CONFIG, _shareable(config))
        records.put(study, records.FINGERPRINT, data.fingerprint)
        records.put(study, records.BASELINES, data.baselines())
        records.put(study, records.OBJECTIVE, data.info.kind.objective)
        # The objective's name where Optuna shows it (optuna-dashboard, trials_dataframe).
        study.set_metric_names(
            [f"val_{data.info.metric}", *(config.objectives or (VALIDATION,))[1:]]
        )
        _enqueue_first(study, config, data, space)
        return
    # Studies from before the keras-tuner engine, and from before --objectives.
    stored = {"engine": "optuna", "objectives": [VALIDATION]} | stored
    changed = {k: (stored.get(k), v) for k, v in identity.items() if stored.get(k) != v}
    if changed:
        key, (was, now) = next(iter(changed.items()))
        raise InputError(
            f"{Opt('study', config.study_name)}: this study was created with {key}={was!r}, but "
            f"this run has {key}={now!r}; pass a new {Opt('study')} name to start another study."
        )


def _enqueue_first(
    study: optuna.Study, config: TuneConfig, data: Dataset, space: SearchSpace
) -> None:
    """A new study's first trials: the task's portfolio of known-good configurations
    the space can express, then the space's declared defaults, where it declares any
    (a grid runs every point anyway; KerasTuner picks its own; a warm start's
    configurations replace both). What the portfolio
    enqueued and skipped is kept in the study (records.PORTFOLIO_LINES) for the console."""
    if config.sampler == "grid" or config.search_engine.own_loop:
        return
    if config.warm_start:  # the configurations asked for go first, no portfolio
        records.put(
            study, records.PORTFOLIO_LINES, [f"portfolio: not used with {Opt('warm_start')}"]
        )
        return
    first = portfolio(space, data.info)
    first.enqueue(study)
    names = ", ".join(name for _, name in first.configurations)
    lines = [*first.lines, f"portfolio: enqueued first: {names}"] if names else first.lines
    records.put(study, records.PORTFOLIO_LINES, lines)
    defaults = default_configuration(space, data.info)
    if defaults is not None:
        study.enqueue_trial(defaults, user_attrs={"origin": "the space's defaults"})


def _shareable(config: TuneConfig) -> dict[str, Any]:
    """The configuration `tuner worker` reads back from the study (no storage URL, no secrets)."""
    out = config.resolved()
    del out["storage"]
    out["tracking_uri"] = mask_secrets(out["tracking_uri"])
    return out


def stored_config(study: optuna.Study, **overrides: Any) -> TuneConfig:
    """The configuration `tuner tune` stored in the study, with `overrides` applied."""
    stored = records.get(study, records.CONFIG, None)
    if stored is None:
        raise InputError(
            f"{Opt('study', study.study_name)}: has no stored configuration (it was not created "
            "by `tuner tune`); start it with `tuner tune --study NAME --storage URL` first."
        )
    fields = {f.name for f in dataclasses.fields(TuneConfig)}
    values = {k: v for k, v in stored.items() if k in fields}
    for key in ("target", "covariates", "split", "objectives", "constraint"):
        values[key] = tuple(values[key]) if values.get(key) else None
    values.update(study=study.study_name, **overrides)
    return TuneConfig(**values, existing=True)


def worker_config(
    study: optuna.Study,
    *,
    storage: str,
    tracking_uri: str | None,
    workers: int | None,
    gpus: str | None = None,
    trials: int | None = None,
    trials_per_gpu: int | None = None,
) -> TuneConfig:
    """The configuration a `tuner worker` joining `study` runs with: the study's, with
    this host's workers and GPUs."""
    overrides: dict[str, Any] = {
        "storage": storage,
        "workers": workers,
        "gpus": gpus,
        "trials_per_gpu": trials_per_gpu,
    }
    if tracking_uri:
        overrides["tracking_uri"] = tracking_uri
    if trials is not None:
        overrides["trials"] = trials
    return stored_config(study, **overrides)


def grid_trials(config: TuneConfig, data: Dataset, space: SearchSpace) -> tuple[TuneConfig, int]:
    """A grid search's configuration with its trials set: the grid's size, or fewer
    where --trials asks for fewer; and the grid's size."""
    size = len(grid_points(space, data.info))
    wanted = size if config.trials is None else min(config.trials, size)
    return dataclasses.replace(config, trials=wanted), size


def _sampler(
    config: TuneConfig, seed: int, *, space: SearchSpace, data: Dataset
) -> optuna.samplers.BaseSampler:
    name = config.sampler
    if name == "grid":
        return GridSampler(grid_points(space, data.info), seed=seed)
    if name == "random" or config.search_engine.own_loop:  # its trials are enqueued
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    constraints = _constraints(len(config.bounds)) if config.bounds else None
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=8,
        multivariate=True,
        group=True,
        constant_liar=True,
        constraints_func=constraints,
    )


def _constraints(bounds: int) -> Callable[[FrozenTrial], list[float]]:
    """The sampler's view of a trial's `--constraint` excesses (at most 0: met); a
    trial pruned or failed before it was measured is not held against any bound (its
    value, or its failure, already tells the sampler)."""

    def excesses(trial: FrozenTrial) -> list[float]:
        return list(trial.user_attrs.get(records.CONSTRAINT_EXCESS) or [0.0] * bounds)

    return excesses


def study_pruner(
    config: TuneConfig, *, folds: int = 0, first_rung: int = 2
) -> optuna.pruners.BasePruner:
    """The study's pruner; none prunes a trial before `first_rung` rounds.

    `first_rung` is the largest minimum share of the model families the space can
    build (`space_min_rounds`): a convolutional branch learns later than a recurrent
    stack alone, and Hyperband's first rungs (rounds 2 and 6 of 20) pruned it before
    it had learned (issue 32: a plain GRU won a study whose LSTM-FCN trials were
    pruned, 18-39 accuracy points below the same LSTM-FCN trained to the end). Every
    trial of a study shares the same rungs, so trials are compared at the same
    round. Under cross-validation a trial's steps run on through its folds.
    """
    # Optuna prunes single-objective studies only.
    if config.search_engine.own_loop or config.pruner == "none" or config.multi_objective:
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(3, first_rung - 1)
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=first_rung, max_resource=config.max_epochs * max(1, folds), reduction_factor=3
    )


def stored_dataset(study: optuna.Study) -> Dataset:
    """The dataset a stored study was tuned on, loaded again from its configuration."""
    config = stored_config(study)
    return load_dataset(resolve_dataset(config.dataset, **config.dataset_options()))
