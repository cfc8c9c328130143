"""Forecasting: the next `horizon` rows of a table's target columns from a window
of the last `seq_len` rows (all columns), the whole horizon at once (direct
multi-output), optionally as a correction of the naive forecast.

Data: tuner.data.series (reading, gaps, scaling, windows, naive baselines).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.errors import InputError, Opt
from tuner.model.params import RECURRENT, TRAINING
from tuner.tasks.base import Task, register

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from tuner.data.spec import Dataset, DatasetInfo, DatasetSpec


class Forecasting(Task):
    """The next `horizon` rows of the targets from a window of every column."""

    name = "forecasting"
    default_space = "forecasting"
    metric = "mse"
    objective = "validation MSE (standardised)"
    suffixes = (".csv", ".parquet")
    needs_target = True
    outputs_in_units = True
    input_name = "window"
    reads = TRAINING | RECURRENT | {"seq_len", "attention", "normalize", "naive_head"}

    def load(self, spec: DatasetSpec) -> Dataset:
        from tuner.data.series import load_series  # deferred: pandas, scikit-learn

        return load_series(spec)

    def train_windows(self, info: DatasetInfo, seq_len: int) -> int:
        return max(1, info.n_train - seq_len - info.horizon + 1)

    def targets_per_window(self, info: DatasetInfo, seq_len: int) -> int:
        return info.horizon * max(1, info.n_targets)

    def window_limit(self, info: DatasetInfo) -> str:
        return f" + horizon ({info.horizon})"

    def shape(self, info: DatasetInfo) -> str:
        return (
            f"{info.n_rows} rows x {info.n_features} columns ({info.n_targets} target), "
            f"horizon {info.horizon}"
        )

    def build(self, params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
        """A recurrent forecaster emitting the whole horizon at once, optionally as a
        correction of the naive forecast (residual head)."""
        import keras

        from tuner.model.blocks import EXACT, naive_forecast, normalization, residual_head
        from tuner.model.build import l2, recurrent_stack

        window = keras.Input((params["seq_len"], info.n_features), name=self.input_name)
        norm = normalization(params["normalize"], window, n_targets=info.n_targets, dtype=EXACT)
        x = recurrent_stack(norm.inputs, params)
        naive = params["naive_head"]
        if naive == "none":
            x = keras.layers.Dense(
                info.horizon * info.n_targets, kernel_regularizer=l2(params), dtype=EXACT
            )(x)
            forecast = keras.layers.Reshape((info.horizon, info.n_targets), dtype=EXACT)(x)
        else:
            start = naive_forecast(
                naive,
                norm.inputs,
                horizon=info.horizon,
                n_targets=info.n_targets,
                period=info.seasonal_period,
            )
            forecast = residual_head(
                x, start, horizon=info.horizon, n_targets=info.n_targets, dtype=EXACT
            )
        return keras.Model(window, norm.restore(forecast), name="forecaster")

    def compile_args(self, info: DatasetInfo) -> dict[str, Any]:
        import keras

        return {
            "loss": keras.losses.MeanSquaredError(),
            "metrics": [keras.metrics.MeanSquaredError(name="mse"), "mae"],
        }

    def size_head(
        self, info: DatasetInfo, largest: Mapping[str, Any], width: int, *, batch: int, steps: int
    ) -> tuple[int, int]:
        return (width + 1) * info.horizon * max(1, info.n_targets), 0

    def respond(self, served: Any, request: Any, params: Mapping[str, Any]) -> pd.DataFrame:
        import pandas as pd

        from tuner.model.serving import forecast

        if not isinstance(request, pd.DataFrame):
            raise InputError("request: a forecaster reads history rows (a table of columns).")
        out = forecast(served, request, source="request")
        time_col = served.preprocessing.get("time_col")
        if time_col in out:
            out[time_col] = out[time_col].astype(str)
        return out

    def request_example(self, data: Any, seq_len: int) -> tuple[Any, dict[str, Any] | None]:
        """The last `seq_len` rows of the validation part, with their timestamps."""
        import pandas as pd

        end = data.borders[1]
        raw = data.scaled[end - seq_len : end] * data.scale + data.mean
        frame = pd.DataFrame(raw.astype(np.float64), columns=list(data.columns))
        if data.spec.time_col and data.timestamps is not None:
            times = pd.to_datetime(data.timestamps[end - seq_len : end]).astype(str)
            frame.insert(0, data.spec.time_col, list(times))
        return frame, None

    def served_signature(self, signature: Any) -> Any:
        """Every column optional to MLflow: the time column may be left out, and a
        missing value column is refused by the model's own code in one line (MLflow's
        schema check would answer with the whole request, twice, before the reason)."""
        from mlflow.models import ModelSignature
        from mlflow.types.schema import ColSpec, Schema, TensorSpec

        columns: list[ColSpec | TensorSpec] = [
            ColSpec(c.type, c.name, required=False) for c in signature.inputs.inputs
        ]
        return ModelSignature(Schema(columns), signature.outputs, signature.params)

    def predict(self, bundle: Any, data: Any, **options: Any) -> Any:
        import pandas as pd

        from tuner.model.serving import forecast

        if not isinstance(data, pd.DataFrame):
            raise InputError("data: a forecasting model reads a pandas DataFrame history.")
        return forecast(bundle, data)

    def predict_file(self, bundle: Any, path: Any, rows: Any) -> pd.DataFrame:
        from tuner.model.serving import forecast

        if path.suffix not in self.suffixes:
            raise InputError(
                f"{Opt('input', path)}: a forecasting model reads a .csv or .parquet history, not "
                f"{path.suffix!r}."
            )
        return forecast(bundle, rows, source=str(path))

    def figure(self, model: Any, data: Any, test: Any, params: Mapping[str, Any], name: str) -> Any:
        from tuner.model import params as hparams
        from tuner.model.batches import predict_windows
        from tuner.report.model_figures import forecast_plot

        # The trial's batch size: the model's predict step is compiled for it already.
        pred = predict_windows(model, test, batch_size=hparams.TrialParams.of(params).batch_size)
        return forecast_plot(pred, data, test, name)


FORECASTING = register(Forecasting())
