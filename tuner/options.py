"""How an option is declared once (`Option`, in a dataclass field's metadata) and
the parsers and checks declarations share; `TuneConfig` (tuner/config.py) declares
`tuner tune`'s options with them, and every edge (the command line, `tuner.tune`,
the docs) is made from those declarations."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import InputError, Opt, in_words

Check = Callable[[str, Any], None]  # (option name, value) -> raises InputError


@dataclass(frozen=True)
class Option:
    """How a `TuneConfig` field is given: its help, how the command line's text
    becomes its value (`parse`), the check of one value (`check`, skipped for None),
    and its group in `tuner tune --help` (`dataset`: overrides the definition)."""

    help: str | Callable[[], str]  # a function where it names other options (`Opt`)
    parse: Callable[[str], Any] | None = None
    check: Check | None = None
    group: str = ""
    metavar: str | None = None

    def text(self, *, flags: bool) -> str:
        """The help worded for the command line (`flags`) or for Python."""
        return self.help if isinstance(self.help, str) else in_words(self.help, flags=flags)


def option(default: Any, help: str | Callable[[], str], **how: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **how)})


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, but got {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, but got {text!r}") from None


def split_fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(
            f"expected three comma-separated numbers (fractions or row borders), but got {text!r}"
        ) from None


def columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def at_least(low: int) -> Check:
    def check(name: str, value: Any) -> None:
        if value < low:
            raise InputError(f"{Opt(name)} must be at least {low}, but got {value}.", option=name)

    return check


def one_of(allowed: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in allowed:
            raise InputError(
                f"{Opt(name)} must be one of {', '.join(allowed)}, but got {value!r}.", option=name
            )

    return check


def at_most(high: int, why: tuple[str, str]) -> Check:
    def check(name: str, value: Any) -> None:
        at_least(1)(name, value)
        if value > high:
            raise InputError(
                f"{Opt(name)} must be at most {high}{why[0]}, but got {value}; {why[1]}.",
                option=name,
            )

    return check


def between(low: int, high: int, *, example: int) -> Check:
    def check(name: str, value: Any) -> None:
        if not low <= value <= high:
            raise InputError(
                f"{Opt(name)} must be {low}-{high}, but got {value}; "
                f"pass e.g. {Opt(name, example)}.",
                option=name,
            )

    return check


def positive_seconds(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"{Opt(name)} must be positive seconds, but got {value}; omit it for no limit.",
            option=name,
        )


def flag(name: str) -> str:
    """The command-line flag of an option: `max_epochs` -> `--max-epochs`."""
    return Opt(name).worded(flags=True)


FUSE_AUTO = "auto"  # --fuse auto (tuner.engine.fused_trials.measured_size)
MAX_FUSE = 16  # trials in one fused group (B10: 16 is already slower than 8 on a CPU)


def fuse_size(text: str) -> int | str:
    if text == FUSE_AUTO:
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a group size or {FUSE_AUTO!r}, but got {text!r}") from None


def check_fuse(name: str, value: int | str) -> None:
    if value == FUSE_AUTO:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(
            f"{Opt(name)} must be a group size (1-{MAX_FUSE}) or {FUSE_AUTO!r}, but got {value!r}.",
            option=name,
        )
    at_most(MAX_FUSE, ("", "larger groups ran slower than one after another"))(name, value)
