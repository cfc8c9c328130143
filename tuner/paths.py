"""Where built-in resources and local stores live."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """Folder of built-in `datasets` or `search_spaces`.

    A source checkout (editable install) keeps them at the repository root; a
    wheel carries them under `tuner/_builtin/`.
    """
    in_checkout = _PACKAGE.parent / kind
    if in_checkout.is_dir():
        return in_checkout
    return _PACKAGE / "_builtin" / kind


DEFAULT_STORAGE = "sqlite:///studies/optuna.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"
LOG_DIR = Path("logs")
KERAS_TUNER_DIR = Path("studies/keras_tuner")  # KerasTuner's own trial checkpoints
STAGING_DIR = Path("studies/staged")  # DataFrames, arrays and space functions given to tuner.tune
MODEL_FILE = "model.keras"  # the Keras model of a bundle or a logged model
