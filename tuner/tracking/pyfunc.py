"""The MLflow pyfunc of a saved model: raw requests in, answers in the data's units.

MLflow loads this file as a "model from code" (no pickled Python object), with
the model's `model.keras` and `preprocessing.json` as artifacts and this
package's code beside it (`code_paths`), so the logged model needs nothing but
its requirements, all on the public index. It answers as `tuner predict` does
(`tuner.model.serving.respond`): history rows -> forecast rows with timestamps,
sequences -> label and probabilities, prompts -> generated text. A bad request
(too little history, a missing column) is an MLflow `INVALID_PARAMETER_VALUE`:
HTTP 400 with the one-line reason in `message`.

The Keras flavour is not used because `mlflow.keras.log_model` cannot take an
input example in MLflow 3.17 (it writes the example before creating its folder).
"""

import json
import os
import sys
from pathlib import Path

import mlflow.models
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class SavedModelPyfunc(mlflow.pyfunc.PythonModel):
    """A served model as MLflow loads it: raw requests in, answers out."""

    def load_context(self, context):
        _import_package(context)
        from tuner.devices import serving_backend

        # The serving environment's backend (KERAS_BACKEND), or the one it has installed.
        os.environ.setdefault("KERAS_BACKEND", serving_backend())
        import keras

        from tuner.errors import InputError
        from tuner.model.serving import SavedModel, respond

        self._respond, self._input_error = respond, InputError
        model = keras.saving.load_model(context.artifacts["keras_model"], safe_mode=True)
        preprocessing = json.loads(Path(context.artifacts["preprocessing"]).read_text())
        self._served = SavedModel(model, preprocessing)

    # A DataFrame hint: MLflow then validates with the logged signature (the raw form)
    # and does not warn that the method has no type hints.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        try:
            return self._respond(self._served, model_input, params)
        except self._input_error as e:
            raise _Rejected(str(e), error_code=INVALID_PARAMETER_VALUE) from None


class _Rejected(MlflowException):
    """A request the model cannot answer. MLflow's scoring server rewrites every
    error's message to start with the whole request ("Failed to predict data
    '...'"); this one keeps its first message, the one-line reason, as the answer."""

    @property
    def message(self):
        return self._reason

    @message.setter
    def message(self, value):
        if not hasattr(self, "_reason"):
            self._reason = value


def _import_package(context):
    """This package as installed where it is, else the copy MLflow put beside the
    model (and first on `sys.path`); either way the copy's folder leaves `sys.path`,
    so processes this one starts later (a study's workers) import what is installed."""
    code = Path(context.artifacts["keras_model"]).resolve().parents[1] / "code"
    copy = [p for p in sys.path if Path(p).resolve() == code]
    sys.path[:] = [p for p in sys.path if p not in copy]
    try:
        import tuner.model.serving
    except ImportError:  # a serving environment without the package: use the copy
        sys.path[:0] = copy
        import tuner.model.serving  # noqa: F401

        sys.path[:] = [p for p in sys.path if p not in copy]


mlflow.models.set_model(SavedModelPyfunc())
