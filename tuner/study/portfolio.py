"""Known-good configurations tried first: a new study's opening trials, per task.

What AutoGluon and Auto-sklearn 2.0 do: before the sampler explores, a short
portfolio of configurations that are known to work is enqueued, so a study on
data nobody tuned for starts from the published models instead of from random
draws. Each entry is replayed through the study's space (as a warm start is): an
entry the space cannot express (a value outside its ranges, or a name it needs
that the space never asks for) is skipped with a line saying why; names the space
does not ask for and the entry can do without are dropped. Enqueued trials carry
`portfolio` (the entry's name), also as a tag of their MLflow runs.

Classification: LSTM-FCN (Karim, Majumdar, Darabi, Chen 2017, "LSTM Fully
Convolutional Networks for Time Series Classification", IEEE Access 6): an LSTM
reading the dimension-shuffled series beside three convolutional blocks (filters
128-256-128, kernels 8-5-3, batch norm, ReLU, global average pooling), Adam at
1e-3 with the learning rate reduced on plateau. The paper picks the LSTM's cells
per dataset from 8, 64 and 128; the two entries are the ends of that grid this
space can hold (16 and 128). Dropout is the space's most (0.5; the paper's 0.8),
batch 16 (the paper's 128 is larger than most small training sets here). Input
z-normalised per sequence (the UCR archive's own preprocessing). None of these
values was chosen on this project's datasets.

A third entry halves the convolutional filters (64-128-64): a quarter of the
arithmetic, for the long series where the full network trains a round or two in
a timed trial's share (ACSF1's 1,460 steps: 9 s a round against 25 s on two CPU
cores). Chosen on cost, not on a score; its one development run (ACSF1, where it
scored 0.84 against the full width's 0.80 in the same time limit) is disclosed
with B9.

Entries run cheapest first (the pooled entry, then half width, then the full
networks), each allowed half a timed study's time (PORTFOLIO_SHARE_OF_TIMEOUT), so
a study on long series reaches the costlier entries only when the cheaper ones
left time for them. This order and that share were set after development runs on
ACSF1, PLAID and PigCVP (disclosed with B9).

On a series long enough for the space to offer input pooling (512 steps or more),
the first entry reads the series averaged over 4 steps (PigCVP's 2,000 steps become
500): the full network at a quarter of the arithmetic a round. The factor is chosen on
cost, not on a score; a shorter series skips the entry. Its development runs
(default study, B9's time limits) are disclosed with B9: on PigCVP it validated
best of the four entries (log loss 1.24 after 18 rounds against 2.99 for the full
width's 6 rounds) and its test accuracy was 0.846 (the study before it: 0.341); on
ACSF1 it validated worst (1.44 against the half width's 0.67).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from tuner.data.spec import DatasetInfo
from tuner.space import SearchSpace, replay
from tuner.study import records


@dataclass(frozen=True)
class Entry:
    """One configuration: its name, task, values, the names it cannot do without, and
    the data it is for (`applies`; other data leaves it out without a line)."""

    name: str
    task: str
    values: dict[str, Any]
    needs: frozenset[str] = field(default_factory=frozenset)
    applies: Callable[[DatasetInfo], bool] = lambda info: True


def _long(info: DatasetInfo) -> bool:
    """Sequences long enough for input pooling (DatasetInfo.pool_choices)."""
    return max(info.pool_choices()) >= 4


_LSTM_FCN = {
    "cell": "lstm", "bidirectional": False, "layers": 1, "dropout": 0.5, "attention": False,
    "conv_layers": 3, "conv_filters": 128, "seq_norm": True, "dim_shuffle": True,
    "optimizer": "adam", "learning_rate": 1e-3, "clipnorm": 0.0, "l2": 1e-7,
    "lr_schedule": "plateau", "batch_size": 16, "pool": 1,
}  # fmt: skip
_CONV = frozenset({"conv_layers", "conv_filters"})
ENTRIES = (
    Entry(
        "lstm-fcn-2017-pool4",
        "classification",
        {**_LSTM_FCN, "units_0": 16, "pool": 4},
        _CONV | {"pool"},
        applies=_long,
    ),
    Entry(
        "lstm-fcn-2017-half",
        "classification",
        {**_LSTM_FCN, "units_0": 16, "conv_filters": 64},
        _CONV,
    ),
    Entry("lstm-fcn-2017", "classification", {**_LSTM_FCN, "units_0": 16}, _CONV),
    Entry("lstm-fcn-2017-128", "classification", {**_LSTM_FCN, "units_0": 128}, _CONV),
)


@dataclass(frozen=True)
class Portfolio:
    """The entries to enqueue, and one line for each entry skipped or trimmed."""

    configurations: list[tuple[dict[str, Any], str]]
    lines: list[str]

    def enqueue(self, study: optuna.Study) -> None:
        for params, name in self.configurations:
            study.enqueue_trial(params, user_attrs={records.PORTFOLIO: name}, skip_if_exists=True)


def portfolio(space: SearchSpace, info: DatasetInfo) -> Portfolio:
    """The task's entries as `space` can express them on this data."""
    out = Portfolio(configurations=[], lines=[])
    for entry in (e for e in ENTRIES if e.task == info.task and e.applies(info)):
        kept, outside, unknown = replay(space, info, entry.values)
        missing = sorted(entry.needs & set(unknown))
        if outside or missing:
            reasons = [f"{k}={v}" for k, v in outside.items()]
            reasons += [f"{k} is not in the space" for k in missing]
            out.lines.append(
                f"portfolio: skipped {entry.name}, space {space.name} cannot express it: "
                + "; ".join(reasons)
            )
            continue
        out.configurations.append((kept, entry.name))
    return out
