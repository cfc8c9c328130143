"""Hyperparameter tuning for Keras LSTM models: Optuna studies tracked in MLflow.

Example::

    from tuner import TuneConfig, run_tune

    summary = run_tune(TuneConfig(dataset="co2", trials=20))
    print(summary["best_test"])

    bundle = load_bundle(Path("exports/co2"))  # after `tuner export --study co2 --out exports/co2`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner._config import TuneConfig
from tuner._data import DatasetInfo
from tuner._errors import InputError, TrialFailed

if TYPE_CHECKING:
    from tuner._bundle import load_bundle
    from tuner._study import run_tune

__all__ = ["DatasetInfo", "InputError", "TrialFailed", "TuneConfig", "load_bundle", "run_tune"]


def __getattr__(name: str) -> Any:
    # Loaded on first use so `tuner datasets` and friends start fast.
    if name == "run_tune":
        from tuner._study import run_tune

        return run_tune
    if name == "load_bundle":
        from tuner._bundle import load_bundle

        return load_bundle
    raise AttributeError(name)
