"""How an option is declared once (`Option`, in a dataclass field's metadata) and
the parsers and checks declarations share; `TuneConfig` (tuner/config.py) declares
`tuner tune`'s options with them, and every edge (the command line, `tuner.tune`,
the docs) is made from those declarations."""

from __future__ import annotations

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


def flag(name: str) -> str:
    """The command-line flag of an option: `max_epochs` -> `--max-epochs`."""
    return Opt(name).worded(flags=True)
