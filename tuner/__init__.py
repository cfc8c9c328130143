"""Hyperparameter tuning for Keras LSTM models: Optuna studies tracked in MLflow.

Example::

    import tuner

    result = tuner.tune("co2", trials=20)          # or a DataFrame, a space function
    print(result.best)
    model = tuner.load_bundle(result.export("exports/co2"))
    print(model.predict(history))

The API lives in `tuner.api`; the notebook's figures in `tuner.analysis`. The
package's layout and its import rule are in docs/architecture.md.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from tuner.config import TuneConfig
from tuner.data.spec import DatasetInfo
from tuner.errors import InputError, TrialFailed

# Optuna imports tqdm.auto, which warns in a Jupyter kernel without ipywidgets; the
# tuner draws no tqdm bar, so a notebook cell would show the warning for nothing.
warnings.filterwarnings("ignore", message="IProgress not found")

if TYPE_CHECKING:
    from tuner.api import Model, TuneResult, load_bundle, open_study, tune

__all__ = [
    "DatasetInfo",
    "InputError",
    "Model",
    "TrialFailed",
    "TuneConfig",
    "TuneResult",
    "load_bundle",
    "open_study",
    "tune",
]
_API = {"Model", "TuneResult", "load_bundle", "open_study", "tune"}


def __getattr__(name: str) -> Any:
    # Deferred: the API imports Optuna, MLflow and the runner, which `tuner datasets`
    # and the other quick commands do not need.
    if name in _API:
        from tuner import api

        return getattr(api, name)
    raise AttributeError(name)
