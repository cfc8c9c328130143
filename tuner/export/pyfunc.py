"""MLflow pyfunc model of an exported forecasting bundle: raw history in, forecast out.

Loaded by MLflow as a "model from code": the input is a table of history rows
in original units (the bundle's columns, and its time column if any); the
output is the bundle's forecast, computed by the same function as `tuner
predict`, so `mlflow models serve` answers with the same numbers.
"""

import json
from pathlib import Path

import mlflow.models
import mlflow.pyfunc
import pandas as pd

from tuner.export.bundle import Bundle
from tuner.export.predict import forecast
from tuner.model.layers import load_model


class BundleForecaster(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        keras_file = Path(context.artifacts["keras_model"])
        preprocessing = json.loads(Path(context.artifacts["preprocessing"]).read_text())
        model = load_model(keras_file)
        self._bundle = Bundle(keras_file.parent, model, preprocessing, {})

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        out = forecast(self._bundle, model_input)
        time_col = self._bundle.preprocessing.get("time_col")
        if time_col in out:
            out[time_col] = out[time_col].astype(str)
        return out


mlflow.models.set_model(BundleForecaster())
