"""The kinds of error: bad input stops the run (exit 2), a failed trial stops only
itself, and a tracking server gone or a full disk stop the study with one line (exit 1)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Which edge a message is made for: the command line names flags (`--max-epochs 0`),
# Python keyword arguments (`max_epochs=0`). Set by the CLI for its commands and by a
# worker process from its job; the default is Python's.
flag_wording: ContextVar[bool] = ContextVar("flag_wording", default=False)

_NO_VALUE = object()


class Opt:
    """An option named in a message, kept as data (its keyword name and the value
    given) and worded for the edge the message is made for: `{Opt("max_epochs", 0)}`
    in an f-string reads `--max-epochs 0` on the command line and `max_epochs=0` in
    Python. A command to type in a shell (`tuner status --study NAME`) is plain text."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: object = _NO_VALUE) -> None:
        self.name = name
        self.value = value

    def worded(self, *, flags: bool) -> str:
        given = self.value is not _NO_VALUE
        if flags:
            key = "--" + self.name.replace("_", "-")
            return f"{key} {self.value}" if given else key
        return f"{self.name}={self.value}" if given else self.name

    def __format__(self, spec: str) -> str:
        return format(self.worded(flags=flag_wording.get()), spec)

    def __str__(self) -> str:
        return self.worded(flags=flag_wording.get())

    def __repr__(self) -> str:
        value = "" if self.value is _NO_VALUE else f", {self.value!r}"
        return f"Opt({self.name!r}{value})"


@contextmanager
def worded(*, flags: bool) -> Iterator[None]:
    """Messages made inside are worded for the command line (`flags`) or for Python."""
    token = flag_wording.set(flags)
    try:
        yield
    finally:
        flag_wording.reset(token)


def in_words(text: Callable[[], str], *, flags: bool) -> str:
    """`text` (a function making a message with `Opt`s) worded for one edge: a help
    text is shown on both, `tuner tune --help` and `help(tuner.tune)`."""
    with worded(flags=flags):
        return text()


class InputError(ValueError):
    """Bad input or configuration: stops the run with exit code 2 (a `ValueError`
    in Python).

    The message is one line naming the input, the rule it breaks, the value
    given and how to fix it. The options it names are `Opt`s, worded for the edge
    the error is raised at; `option` is the keyword name of the option at fault,
    where one is (`max_epochs`), for a program to read.
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


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
