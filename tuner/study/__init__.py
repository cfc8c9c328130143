"""Optuna studies: storage, opening or resuming a study with its data and space,
and what a study holds (best trial, rows, test metrics)."""
