"""Hyperparameters: every name the model builders and the trainer read, its default,
and which task's model reads it. The one home of the defaults.

A space's values reach the model as `TrialParams`: reading a name the space did not
define gives its default; every read is recorded, and `check_space_names`
refuses, before any training, a name the task's model never reads (a misspelt
`learning_rat` would otherwise train silently with the default rate).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tuner.errors import InputError
from tuner.model.cells import CELLS
from tuner.tasks.base import get_task

REQUIRED = object()  # no default: the space must define it
DEFAULTS: dict[str, Any] = {
    "seq_len": REQUIRED,  # window length (forecasting, character models)
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "momentum": 0.9,  # SGD only
    "clipnorm": 0.0,  # 0: no clipping
    "lr_schedule": "constant",  # or plateau, cosine
    "freeze_recurrent_epochs": 0,  # --init-from: epochs the pretrained recurrent layers stay frozen
    "l2": 0.0,
    "cell": "lstm",
    "layers": 1,
    "units_{i}": 32,  # units of recurrent layer i
    "bidirectional": False,
    "layer_norm": False,
    "dropout": 0.0,
    "attention": False,  # pooling over the recurrent outputs; char_lm: causal self-attention
    "normalize": "none",  # forecasting input normalisation: revin, last, none
    "naive_head": "none",  # forecasting residual head: persistence, seasonal, none
    "seq_norm": False,  # classification: per-sequence z-normalisation
    "dim_shuffle": False,  # classification: the recurrent stack reads the transposed series
    "conv_layers": 0,  # classification: convolutional branch depth (LSTM-FCN)
    "conv_filters": 128,
    "pool": 1,  # classification: average pooling of the input by this factor (long series)
    "embedding_dim": 32,  # character models
    "input_dropout": 0.0,  # character models: dropout on the embedded characters
}
# Where a name takes one of a few values: the ones the model builders know.
CHOICES: dict[str, tuple[str, ...]] = {
    "cell": tuple(CELLS),
    "optimizer": ("adam", "sgd", "rmsprop"),
    "lr_schedule": ("constant", "plateau", "cosine"),
    "normalize": ("none", "last", "revin"),
    "naive_head": ("none", "persistence", "seasonal"),
}
# LSTM-FCN's convolutional branch (Karim et al. 2017): kernels 8, 5, 3 with
# filters f, 2f, f (`conv_filters` = f); fewer layers keep the first ones.
CONV_KERNELS = (8, 5, 3)
CONV_WIDTHS = (1, 2, 1)
HEAD_WIDTH = 32  # units per head of a character model's causal self-attention
# The names every task's model reads: training and the recurrent stack. Each task
# declares what it reads beyond them (`Task.reads`, tuner/tasks/).
TRAINING = frozenset({
    "batch_size", "optimizer", "learning_rate", "momentum", "clipnorm", "lr_schedule",
    "freeze_recurrent_epochs",
})  # fmt: skip
RECURRENT = frozenset({
    "cell", "layers", "units_{i}", "bidirectional", "layer_norm", "dropout", "l2",
})  # fmt: skip
_INDEXED = re.compile(r"^(?P<stem>[a-z_]+_)\d+$")


def pattern(name: str) -> str:
    """`units_2` -> `units_{i}`; other names unchanged."""
    m = _INDEXED.match(name)
    return f"{m['stem']}{{i}}" if m and f"{m['stem']}{{i}}" in DEFAULTS else name


class TrialParams(Mapping[str, Any]):
    """A trial's values, parsed once and passed down to the model builders, the trainer
    and the tracker: the names every model reads as typed attributes (`window`,
    `batch_size`, `cell`, `units`, ...), any name by `params[name]`. A name the space
    left out reads as its default; every read is recorded in `read`."""

    def __init__(self, values: Mapping[str, Any], *, max_seq_len: int | None = None) -> None:
        self._values = dict(values)
        self._max_seq_len = max_seq_len
        self.read: set[str] = set()

    @classmethod
    def of(cls, values: Mapping[str, Any], *, max_seq_len: int | None = None) -> TrialParams:
        """`values` parsed, or as they are where they already were (with the
        `max_seq_len` they were parsed with)."""
        if isinstance(values, TrialParams):
            return values
        return cls(values, max_seq_len=max_seq_len)

    def __getitem__(self, name: str) -> Any:
        key = pattern(name)
        if key not in DEFAULTS:
            raise KeyError(f"{name!r} is not a hyperparameter (add it to DEFAULTS and Task.reads)")
        self.read.add(key)
        if name in self._values:
            return self._values[name]
        if DEFAULTS[key] is REQUIRED:
            raise InputError(f"search space: must define {name!r}; no default exists for it.")
        return DEFAULTS[key]

    def __contains__(self, name: object) -> bool:
        """Whether the space defined `name` (a default is not a definition), as for
        the dict of values it came from."""
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        """The space's value of `name`, else `default`, as the dict's `get`."""
        return self[name] if name in self._values else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def window(self) -> int:
        """The input's length in steps: `seq_len`, or the whole sequence where the task
        has no windows (classification: the data's longest, `max_seq_len`)."""
        if "seq_len" in self._values or self._max_seq_len is None:
            return int(self["seq_len"])
        return int(self._max_seq_len)

    @property
    def batch_size(self) -> int:
        return int(self["batch_size"])

    @property
    def cell(self) -> str:
        return str(self["cell"])

    @property
    def layers(self) -> int:
        return int(self["layers"])

    @property
    def units(self) -> tuple[int, ...]:
        """The width of each recurrent layer."""
        return tuple(int(self[f"units_{i}"]) for i in range(self.layers))

    @property
    def learning_rate(self) -> float:
        return float(self["learning_rate"])

    @property
    def lr_schedule(self) -> str:
        return str(self["lr_schedule"])

    @property
    def l2(self) -> float:
        return float(self["l2"])

    @property
    def dropout(self) -> float:
        return float(self["dropout"])

    @property
    def conv_layers(self) -> int:
        return int(self._values.get("conv_layers") or 0)

    @property
    def family(self) -> str:
        """The model family, for its minimum pruning share (FAMILY_MIN_SHARE)."""
        return "convolutional" if self.conv_layers else "recurrent"

    def short_name(self) -> str:
        """Cell, layers x units, window: `lstm 3x64 w52` (`64/32` where the widths
        differ): a trial's run name in the MLflow UI, after its number."""
        widths = [str(units) for units in self.units]
        units = f"{self.layers}x{widths[0]}" if len(set(widths)) == 1 else "/".join(widths)
        parts = [self.cell, units]
        if self.conv_layers:
            parts.append(f"+conv{self.conv_layers}")
        if "seq_len" in self._values:
            parts.append(f"w{self._values['seq_len']}")
        return " ".join(parts)

    def min_rounds(self, rounds: int) -> int:
        """Rounds this configuration trains before a pruner may stop it (at least 1)."""
        return max(1, math.ceil(FAMILY_MIN_SHARE[self.family] * rounds))


def check_space_names(names: Iterable[str], *, task: str, space: str) -> None:
    """Every name a space defines must be read by the task's model."""
    kind = get_task(task)
    reads = kind.reads
    for name in names:
        if pattern(name) in reads:
            continue
        known = sorted(n.replace("{i}", "0") for n in reads)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        hint = kind.never.get(name, hint)
        raise InputError(
            f"search space {space}: defines {name!r}, which the {task} model never reads; "
            f"{hint}rename or remove it (the names it reads: {', '.join(sorted(reads))})."
        )


def _whole(low: int, high: float = math.inf) -> tuple[Callable[[Any], bool], str]:
    rule = f"a whole number >= {low}" if high == math.inf else f"a whole number {low}-{high:g}"
    return (lambda v: _is_int(v) and low <= v <= high), rule


def _number(
    low: float, *, above: bool, below: float = math.inf
) -> tuple[Callable[[Any], bool], str]:
    lowest = f"> {low:g}" if above else f">= {low:g}"
    rule = f"a finite number {lowest}" + (f" and < {below:g}" if below < math.inf else "")
    return (
        lambda v: (
            _is_number(v) and math.isfinite(v) and (v > low if above else v >= low) and v < below
        )
    ), rule


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return _is_number(v) and float(v).is_integer()


_FLAG = ((lambda v: isinstance(v, bool) or v in (0, 1)), "True or False")
# What each numeric or boolean name may take (the choices above list theirs).
VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seq_len": _whole(1),
    "batch_size": _whole(1),
    "layers": _whole(1),
    "units_{i}": _whole(1),
    "conv_layers": _whole(0, len(CONV_KERNELS)),
    "conv_filters": _whole(1),
    "pool": _whole(1),
    "embedding_dim": _whole(1),
    "freeze_recurrent_epochs": _whole(0),
    "learning_rate": _number(0, above=True),
    "momentum": _number(0, above=False, below=1),
    "clipnorm": _number(0, above=False),
    "l2": _number(0, above=False),
    "dropout": _number(0, above=False, below=1),
    "input_dropout": _number(0, above=False, below=1),
    **{name: _FLAG for name in ("bidirectional", "layer_norm", "attention", "seq_norm")},
    "dim_shuffle": _FLAG,
}


def check_space_values(choices: Mapping[str, Iterable[Any]], *, space: str) -> None:
    """Every value a space can give (`choices`: the candidates `probe_space` found, a
    range's two ends) must be one the model can build and train: refused before any
    trial starts, not 30 s into the first one."""
    for name, values in choices.items():
        key = pattern(name)
        for value in values:
            if key in CHOICES:
                fits, rule = value in CHOICES[key], f"one of {', '.join(CHOICES[key])}"
            elif key in VALUES:
                fits, rule = VALUES[key][0](value), VALUES[key][1]
            else:
                continue
            if not fits:
                raise InputError(
                    f"search space {space}: {name!r} can take {value!r}, but {name} must be "
                    f"{rule}; change its values or range."
                )


# The share of a trial's rounds no pruner may cut short, by model family: a
# convolutional branch (LSTM-FCN) learns later than a recurrent stack alone
# (tuner.study.setup.study_pruner says what went wrong without it).
FAMILY_MIN_SHARE = {"recurrent": 0.1, "convolutional": 0.4}


def space_min_rounds(choices: Mapping[str, Iterable[Any]], rounds: int) -> int:
    """The largest `min_rounds` of the families a space can build (`choices`: the
    values each name can take, as `probe_space` returns them)."""
    convolutional = any(int(v or 0) for v in choices.get("conv_layers", ()))
    return TrialParams({"conv_layers": int(convolutional)}).min_rounds(rounds)
