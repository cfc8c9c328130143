"""The MLflow pyfunc flavour of a trained model: the `.keras` file behind `predict`.

MLflow loads this file as a "model from code" (no pickled Python object); a
copy travels with every logged model. It imports nothing from this package:
the saved model is made of Keras' own layers, so the logged model runs wherever
its requirements (Keras, MLflow, a backend) are installed. The Keras flavour is
not used because `mlflow.keras.log_model` cannot take an input example in MLflow
3.17 (it writes the example before creating its folder).
"""

import mlflow.models
import mlflow.pyfunc
import numpy as np


class KerasWindowModel(mlflow.pyfunc.PythonModel):
    """Maps windows (n, seq_len, features) in the data's units to forecasts in its
    units (class probabilities, next-character logits for the other tasks)."""

    def load_context(self, context):
        import keras  # the backend is chosen by the serving environment (KERAS_BACKEND)

        self._model = keras.saving.load_model(context.artifacts["keras_model"], safe_mode=True)

    # np.ndarray is the one array hint MLflow accepts without deriving a schema
    # of its own (the signature logged with the model is the schema).
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        x = np.asarray(model_input, dtype=np.float32)
        return np.asarray(self._model.predict(x, verbose=0))


mlflow.models.set_model(KerasWindowModel())
