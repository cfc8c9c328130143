"""The `tuner` command: a thin layer of flags over `tuner.api`."""
