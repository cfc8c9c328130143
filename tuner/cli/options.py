"""Options of the `tuner` commands taken from their one declaration (`TuneConfig`'s
fields in tuner/config.py): the flag, help and parser of each, as argparse takes them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tuner.config import OPTIONS
from tuner.options import flag


def parsed_by(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option's parser as argparse takes it: its ValueError is argparse's message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def declared(cmd: Any, name: str, *, required: bool = False, help: str | None = None) -> None:
    """An option of another command with the meaning it has in `tuner tune`: added
    from its `TuneConfig` declaration (flag, help, parser; its check runs where the
    command builds its configuration). `help` only where this command's default
    differs."""
    option = OPTIONS[name]
    cmd.add_argument(
        flag(name),
        required=required,
        help=help or option.text(flags=True),
        metavar=option.metavar,
        type=parsed_by(option.parse or str),
    )
