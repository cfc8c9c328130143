"""`python -m tuner`: the `tuner` command."""

from tuner.cli.main import console_entry

console_entry()
