"""The two kinds of error: one stops the run, one fails a single trial."""

from __future__ import annotations


class InputError(Exception):
    """Bad input or configuration: stops the run with exit code 2.

    The message is one line naming the input, the rule it breaks, the value
    given and how to fix it.
    """


class TrialFailed(Exception):
    """A trial that cannot finish (NaN loss, out of memory): the study goes on.

    The message is stored on the trial as its failure reason.
    """
