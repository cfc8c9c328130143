"""Pruning that gives every model family a fair share of its budget first.

Hyperband's first rungs come early (rounds 2 and 6 of 20 by default) and keep
whatever is ahead there. A convolutional branch (LSTM-FCN) learns later than a
recurrent stack alone: in the study of issue 32 the conv trials were pruned or
lost at those rungs and a plain GRU won, 18-39 accuracy points below the same
LSTM-FCN trained to the end. So no trial is pruned before it has run its
family's minimum share of the rounds (`tuner.model.params.min_rounds`); after
that the wrapped pruner decides as before, comparing at its rungs.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from tuner.model.params import min_rounds


class FairPruner(optuna.pruners.BasePruner):
    """`inner`, asked only once a trial has reported its family's minimum rounds
    (`rounds` per training run: a cross-validated trial's steps run on through its
    folds, and the minimum is counted in its first fold)."""

    def __init__(self, inner: optuna.pruners.BasePruner, *, rounds: int) -> None:
        self._inner = inner
        self._rounds = rounds

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step + 1 < min_rounds(trial.params, self._rounds):
            return False
        return self._inner.prune(study, trial)
