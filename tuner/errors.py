"""The kinds of error: bad input stops the run (exit 2), a failed trial stops only
itself, and a tracking server gone or a full disk stop the study with one line (exit 1)."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextvars import ContextVar

# `--max-epochs 0` -> `max_epochs=0`; `--study co2:` -> `study=co2:`; `--format:` -> `format:`
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: (?![a-z]+ )([^\s,;:]+))?")


# Set by the CLI: input errors keep naming flags rather than keyword arguments.
flag_wording: ContextVar[bool] = ContextVar("flag_wording", default=False)


class InputError(ValueError):
    """Bad input or configuration: stops the run with exit code 2 (a `ValueError`
    in Python).

    The message is one line naming the input, the rule it breaks, the value
    given and how to fix it; it names command-line flags, and `for_python`
    names the keyword arguments of `tuner.tune` instead.
    """

    def for_python(self) -> str:
        def keyword(m: re.Match[str]) -> str:
            name = m.group(1).replace("-", "_")
            return f"{name}={m.group(2)}" if m.group(2) else name

        return _FLAG.sub(keyword, str(self))


class TrialFailed(Exception):
    """A trial that cannot finish (NaN loss, out of memory): the study goes on.

    The message is stored on the trial as its failure reason.
    """


class TrackingUnavailable(Exception):
    """The MLflow tracking server stopped answering within its retries: the study
    stops with exit code 1 (its Optuna records are intact; runs left open are
    closed by the next run)."""


class DiskFull(Exception):
    """The disk holding a store filled up: the study stops with exit code 1 and one
    line (what was committed stays; the next run closes the runs left open)."""


_FULL = ("database or disk is full", "No space left on device", "Disk quota exceeded")


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what caused it, outermost first (`raise ... from`, or raised while
    handling)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def disk_full(error: BaseException) -> DiskFull | None:
    """A DiskFull in one line where `error` (or an exception in its chain) says the
    disk is full (SQLite's own words, or ENOSPC/EDQUOT from the OS), else None."""
    for cause in causes(error):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {cause.filename}" if cause.filename else ""
            return DiskFull(f"the disk is full{where}; free space, then run the same command again")
        if any(words in str(cause) for words in _FULL):
            return DiskFull(
                "the disk holding the stores is full (database or disk is full); free space, "
                "then run the same command again"
            )
    return None
