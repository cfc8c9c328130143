"""What a dataset is: its spec (every option a definition or the CLI sets), the
facts a search space reads (`DatasetInfo`), and the protocol every task's data
object follows (`tuner.data.series.SeriesData`, `tuner.data.sequences.SequenceData`,
`tuner.data.text.TextData`): split, scaled or encoded, with its fingerprint,
windows, metrics and baselines.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tuner.config import MAX_FOLDS
from tuner.errors import InputError, Opt
from tuner.tasks.base import Task, get_task

FILLS = ("interpolate", "ffill")
_DEFAULT_SPLIT = (0.7, 0.15, 0.15)
# Classification input pooling (`pool_choices`): offered from this many steps, down to
# at least POOL_MIN_STEPS. Chosen on cost (a round's arithmetic), not on a score.
POOL_FROM = 512
POOL_MIN_STEPS = 128


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """What to load and how to split it; every field is a definition key or CLI option."""

    name: str
    path: Path
    task: str = "forecasting"
    description: str = ""
    time_col: str | None = None
    target: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    horizon: int = 1
    seasonal_period: int | None = None
    lookback: int | None = None  # typical input window; the base of seq_len_choices
    split: tuple[float, ...] = _DEFAULT_SPLIT  # three fractions, or three row borders
    fill: str | None = None
    cv: int | None = None  # folds; 0 none; None: the task's default (see default_cv)
    source: str = ""
    units: str = ""  # of the targets, for figures (e.g. "ppm")

    def __post_init__(self) -> None:
        where = f"dataset '{self.name}'"
        try:
            task = get_task(self.task)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        if task.needs_target and not self.target:
            raise InputError(
                f"{where}: needs at least one target column; pass {Opt('target', 'COL')}."
            )
        if self.horizon < 1:
            raise InputError(
                f"{where}: horizon must be at least 1, but got horizon={self.horizon}; pass "
                f"{Opt('horizon', 'N')} with N >= 1."
            )
        _check_split(self.split, where)
        if self.cv is not None and (self.cv == 1 or not 0 <= self.cv <= MAX_FOLDS):
            raise InputError(
                f"{where}: cv must be 0 (no cross-validation) or 2-{MAX_FOLDS} folds, but got "
                f"cv={self.cv}; pass {Opt('cv', '5')}, or {Opt('cv', '0')} to select on the "
                "validation split."
            )
        if self.fill not in (None, *FILLS):
            raise InputError(
                f"{where}: fill must be one of {FILLS} or absent, but got fill={self.fill!r}."
            )

    @property
    def split_is_borders(self) -> bool:
        return any(v > 1 for v in self.split)


def _check_split(split: tuple[float, ...], where: str) -> None:
    fix = "give three fractions like 0.7,0.15,0.15 or three row borders like 8640,11520,14400"
    if len(split) != 3 or not all(math.isfinite(v) and v > 0 for v in split):
        raise InputError(
            f"{where}: split must be three positive numbers (train, validation, test), "
            f"but got split={list(split)}; {fix}."
        )
    if any(v > 1 for v in split):
        if any(float(v) != int(v) for v in split) or not split[0] < split[1] < split[2]:
            raise InputError(
                f"{where}: row borders must be increasing whole numbers, but got "
                f"split={list(split)}; {fix}."
            )
    elif sum(split) > 1 + 1e-9:
        raise InputError(
            f"{where}: split fractions must sum to at most 1, but got split={list(split)}; {fix}."
        )


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What a search space may know about the data."""

    task: str
    n_features: int
    n_rows: int  # rows of a series, sequences of a classification set, characters of a text
    n_train: int
    max_seq_len: int  # longest input window the training split can supply
    n_targets: int = 0
    horizon: int = 1
    seasonal_period: int | None = None
    lookback: int | None = None
    n_classes: int = 0
    vocab_size: int = 0
    variable_length: bool = False
    cv: int = 0  # cross-validation folds a trial trains (0: the validation split)

    @property
    def kind(self) -> Task:
        """The task object: what the data's task does (`tuner.tasks`)."""
        return get_task(self.task)

    @property
    def default_ensemble(self) -> int:
        """`--ensemble` left out: the task's default for this data (3 on small
        classification sets selected on a validation split, else 0: off)."""
        return self.kind.default_ensemble(self)

    @property
    def metric(self) -> str:
        """The validation metric trials are selected by."""
        return self.kind.metric

    def seq_len_choices(self, multiples: tuple[float, ...] = (0.5, 1, 2, 3)) -> list[int]:
        """Window lengths as multiples of the lookback (or seasonal period, or horizon)
        that fit the data."""
        base = self.lookback or self.seasonal_period or self.horizon
        return self.fitting(max(2, round(m * base)) for m in multiples)

    def window_choices(self) -> list[int]:
        """The default spaces' window lengths, derived from the data (`window_rule`
        says how), never longer than the training split allows."""
        return self.kind.window_choices(self)

    @property
    def window_rule(self) -> str:
        """How `window_choices` is derived for this dataset, in words."""
        return self.kind.window_rule(self)

    def train_windows(self, seq_len: int) -> int:
        """Training windows (samples) one epoch holds at window length `seq_len`."""
        return self.kind.train_windows(self, seq_len)

    def targets_per_window(self, seq_len: int) -> int:
        """What one training window teaches: a label, a forecast, or a target a character."""
        return self.kind.targets_per_window(self, seq_len)

    def batch_size_choices(self, candidates: tuple[int, ...]) -> list[int]:
        """The candidate batch sizes that give a pass at least the task's `min_steps`
        optimizer steps at the longest default window; on a set too small for any of
        them, the largest power of two that does (and half of it)."""
        longest = max(self.window_choices(), default=1) if self.kind.windowed else 1
        fits = self.train_windows(longest) // self.kind.min_steps
        kept = sorted(b for b in candidates if b <= fits)
        if kept:
            return kept
        largest = 2 ** max(0, int(math.log2(max(1, fits))))
        return sorted({max(1, largest // 2), largest})

    def pool_choices(self) -> list[int]:
        """Average-pooling factors of the classification input where the longest
        sequence has POOL_FROM steps or more: 1, 2, 4 and 8, as far as they leave
        POOL_MIN_STEPS steps ([1] for shorter data). A convolutional block's arithmetic
        grows with the steps it reads: pooled by 4, a round costs about a quarter
        (PigCVP's 2,000 steps: 18 rounds in a timed trial's share against 6), so the
        trial gets the passes the published classifiers need."""
        if self.kind.windowed or self.max_seq_len < POOL_FROM:
            return [1]
        return [f for f in (1, 2, 4, 8) if self.max_seq_len // f >= POOL_MIN_STEPS]

    def fitting(self, lengths: Any) -> list[int]:
        """`lengths` that fit the training split (else the shortest possible), sorted."""
        ordered = sorted(set(lengths))
        fitting = [n for n in ordered if n <= self.max_seq_len]
        return fitting or [min(ordered[0], self.max_seq_len)]


@dataclass(frozen=True)
class Windows:
    """Model inputs and targets of one split."""

    x: np.ndarray
    y: np.ndarray


class Dataset(Protocol):
    """What the trial path needs from a loaded dataset of any task."""

    @property
    def spec(self) -> DatasetSpec: ...

    @property
    def fingerprint(self) -> dict[str, Any]: ...

    @property
    def info(self) -> DatasetInfo: ...

    def windows(self, seq_len: int) -> dict[str, Windows]:
        """Inputs and targets of the train, val and test splits for one window length."""
        ...

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """The task's metrics of predictions against targets."""
        ...

    def baselines(self) -> dict[str, dict[str, float]]:
        """Naive baselines' metrics on the validation and test splits."""
        ...

    def folds(self) -> Sequence[Dataset]:
        """Cross-validation folds (`info.cv` of them; none without CV): the same data
        with training and validation parts redrawn inside the non-test part, scaled
        on each fold's own training part, and no test part."""
        ...

    def preprocessing(self) -> dict[str, Any]:
        """What a trained model needs to read new data: scaler, columns, classes or
        vocabulary (JSON-able; saved in exported bundles)."""
        ...


def split_borders(n: int, spec: DatasetSpec, *, unit: str = "rows") -> tuple[int, int, int]:
    """Ends of the train, validation and test parts of `n` ordered items."""
    if spec.split_is_borders:
        borders = tuple(int(v) for v in spec.split)
        if borders[2] > n:
            raise InputError(
                f"{spec.path}: split border {borders[2]} is beyond the end of the data "
                f"({n} {unit}); give borders up to {n}."
            )
        return borders[0], borders[1], borders[2]
    train, val, test = spec.split
    train_end = int(n * train)
    val_end = train_end + int(n * val)
    whole = sum(spec.split) > 1 - 1e-9
    test_end = n if whole else min(n, val_end + int(n * test))
    return train_end, val_end, test_end


def rolling_origin(end: int, folds: int) -> list[tuple[int, int]]:
    """Ends of the training and validation parts of rolling-origin folds over the
    ordered items [0, end): an expanding training part, each fold scored on the
    block after it, the last block ending at `end` (scikit-learn's TimeSeriesSplit).

    >>> rolling_origin(100, 3)
    [(25, 50), (50, 75), (75, 100)]
    """
    from sklearn.model_selection import TimeSeriesSplit  # 4 s to import: `tuner` stays light

    splits = TimeSeriesSplit(n_splits=folds).split(np.arange(end))
    return [(int(train[-1]) + 1, int(val[-1]) + 1) for train, val in splits]


def fingerprint(
    spec: DatasetSpec, *, borders: tuple[int, int, int] | None = None, **details: Any
) -> dict[str, Any]:
    """What identifies the data a study was tuned on: file hash, task and split
    (`borders`: ends of train, validation and test in an ordered series or text)."""
    out = {
        "name": spec.name,
        "task": spec.task,
        "file": spec.path.name,
        "sha256": hashlib.sha256(spec.path.read_bytes()).hexdigest(),
        **details,
    }
    if borders is not None:
        out["split_borders"] = list(borders)
        out["split_sizes"] = [borders[0], borders[1] - borders[0], borders[2] - borders[1]]
    return out
