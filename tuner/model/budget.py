"""The training budget of a trial, in rounds and seconds.

No Keras here: the console states the rule (`tuner datasets --json`) before a
backend is chosen, and importing Keras first would fix the backend.
"""

from __future__ import annotations

import math


def batches_per_pass(n_windows: int, batch_size: int) -> int:
    """Full batches in one pass over `n_windows` training windows (at least one)."""
    return max(1, n_windows // batch_size)


# The training budget is counted in rounds: `--max-epochs` rounds, `--patience`
# rounds, one pruning report a round. A round is one pass over the training
# windows where they hold many targets (ETTh1's 8,640 windows, a text's 115,000
# characters: as before); on a small set it is as many shuffled passes as make
# ROUND_TARGETS targets (labels, forecast values, next characters) and ROUND_STEPS
# optimizer steps, up to MAX_PASSES. So a trial on 30 sequences in batches of 16
# gets 20 rounds of 100 passes, 2,000 optimizer steps (the published convolutional
# classifiers train 1,500-2,000 epochs), where one pass a round gave it 20-40. A
# round is one Keras epoch either way, so validation, callbacks and their
# overhead come once a round, not once a pass.
ROUND_TARGETS = 2_048
# Trial attribute: the trial trained in rounds of this many targets, so its
# `best_epoch` counts rounds; trials recorded before rounds counted single passes.
ROUNDS_ATTR = "round_targets"
ROUND_STEPS = 16
MAX_PASSES = 100


def passes_per_round(n_windows: int, batch_size: int, *, targets: int = 1) -> int:
    """Shuffled passes over `n_windows` training windows of `targets` targets each
    that make one round (counting the windows a pass trains on: full batches)."""
    used = batches_per_pass(n_windows, batch_size) * min(batch_size, n_windows)  # full batches
    by_targets = math.ceil(ROUND_TARGETS / max(1, used * targets))
    by_steps = math.ceil(ROUND_STEPS / batches_per_pass(n_windows, batch_size))
    return min(MAX_PASSES, max(1, by_targets, by_steps))


# A timed study (--timeout) gives one trial at most this share of its time, and
# never more than the study has left, its folds sharing it evenly: on long series a
# single trial of a slow family would otherwise take the whole budget, and a trial
# begun late would run past the study's end. The trial stops at the end of a round
# (so it trains one round at least), keeps its best round's weights and is scored
# as usual (stop reason "time_limit").
TRIAL_SHARE_OF_TIMEOUT = 0.25
# A portfolio trial (tuner/study/portfolio.py), a configuration known to work that
# needs many rounds, may take twice that: on long series a quarter held the
# published networks to a few rounds.
PORTFOLIO_SHARE_OF_TIMEOUT = 0.5


def fit_seconds(
    timeout: float | None, *, folds: int, left: float | None = None, portfolio: bool = False
) -> float | None:
    """The seconds one training run of a trial may take in a study limited to `timeout`
    seconds with `left` seconds left when the trial begins: TRIAL_SHARE_OF_TIMEOUT of
    it (PORTFOLIO_SHARE_OF_TIMEOUT for a `portfolio` trial) or what is left, whichever
    is less, shared evenly by a trial's folds."""
    if not timeout:
        return None
    share = timeout * (PORTFOLIO_SHARE_OF_TIMEOUT if portfolio else TRIAL_SHARE_OF_TIMEOUT)
    return (share if left is None else min(share, left)) / max(1, folds)


def steps_per_round(n_windows: int, batch_size: int, *, targets: int = 1) -> int:
    """Optimizer steps in one round (one Keras epoch)."""
    passes = passes_per_round(n_windows, batch_size, targets=targets)
    return passes * batches_per_pass(n_windows, batch_size)
