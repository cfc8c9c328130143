"""A fourth task in one file: sequence regression (a number for each whole
sequence), registered from outside the package and tuned end to end through the
Python API: its own data file, loader, head, loss, metric, baseline, serving and
figure; nothing under tuner/ names it.

The task is defined at module level: the study's worker processes import this
module (`tuner.tasks.base.plugin_modules`) to know it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tuner
from tests.conftest import Stores
from tuner.data.spec import DatasetInfo, DatasetSpec, Windows, fingerprint
from tuner.errors import InputError
from tuner.model.params import RECURRENT, TRAINING
from tuner.study import records
from tuner.tasks.base import Task, get_task, register, task_names

_PARTS = {"train": slice(0, 120), "val": slice(120, 160), "test": slice(160, 200)}


@dataclass(frozen=True, eq=False)
class WaveData:
    """Sine waves of 40 steps; the target is each wave's amplitude."""

    spec: DatasetSpec
    x: np.ndarray  # (200, 40, 1) float32
    y: np.ndarray  # (200,) float32
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            task="sequence_regression",
            n_features=1,
            n_rows=len(self.x),
            n_train=120,
            max_seq_len=self.x.shape[1],
        )

    def windows(self, seq_len: int) -> dict[str, Windows]:
        return {name: Windows(x=self.x[part], y=self.y[part]) for name, part in _PARTS.items()}

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        error = np.asarray(y_pred).reshape(-1) - np.asarray(y_true).reshape(-1)
        return {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}

    def baselines(self) -> dict[str, dict[str, float]]:
        """The training mean as every prediction."""
        mean = float(self.y[_PARTS["train"]].mean())
        return {
            f"mean_{split}": self.metrics(self.y[_PARTS[split]], np.full(40, mean))
            for split in ("val", "test")
        }

    def folds(self) -> list[WaveData]:
        return []

    def preprocessing(self) -> dict[str, Any]:
        return {"task": "sequence_regression", "steps": int(self.x.shape[1])}


class SequenceRegression(Task):
    name = "sequence_regression"
    metric = "mse"
    objective = "validation MSE"
    suffixes = (".waves",)
    windowed = False
    standardised = False  # the waves are read as they are
    reads = TRAINING | RECURRENT

    def load(self, spec: DatasetSpec) -> WaveData:
        arrays = np.load(spec.path)
        return WaveData(spec, arrays["X"], arrays["y"], fingerprint=fingerprint(spec))

    def build(self, params: Mapping[str, Any], info: DatasetInfo) -> Any:
        import keras

        from tuner.model.build import recurrent_stack

        x = keras.Input((info.max_seq_len, info.n_features), name=self.input_name)
        amplitude = keras.layers.Dense(1, name="amplitude")(recurrent_stack(x, params))
        return keras.Model(x, keras.layers.Reshape(())(amplitude), name="regressor")

    def compile_args(self, info: DatasetInfo) -> dict[str, Any]:
        import keras

        return {"loss": "mse", "metrics": [keras.metrics.MeanSquaredError(name="mse")]}

    def size_head(
        self, info: DatasetInfo, largest: Mapping[str, Any], width: int, *, batch: int, steps: int
    ) -> tuple[int, int]:
        return width + 1, 0

    def respond(self, served: Any, request: Any, params: Mapping[str, Any]) -> pd.DataFrame:
        waves = np.asarray(request, np.float32)
        if waves.ndim != 3:
            raise InputError("request: waves shaped (samples, steps, 1).")
        amplitudes = np.asarray(served.model.predict(waves, verbose=0)).reshape(-1)
        return pd.DataFrame({"amplitude": amplitudes})

    def request_example(self, data: Any, seq_len: int) -> tuple[Any, dict[str, Any] | None]:
        return data.x[_PARTS["val"]][:2], None

    def figure(self, model: Any, data: Any, test: Any, params: Mapping[str, Any], name: str) -> Any:
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots()
        ax.scatter(test.y, np.asarray(model.predict(test.x, verbose=0)).reshape(-1))
        ax.set(xlabel="amplitude", ylabel="predicted", title=name)
        return figure


register(SequenceRegression())


def space(hp, data):  # staged as its own module: no imports, so no annotations
    hp.Choice("units_0", [4, 8])
    hp.Float("learning_rate", 3e-3, 1e-2, sampling="log")


def _write_waves(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    amplitude = rng.uniform(0.5, 2.0, 200).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (200, 1))
    steps = np.arange(40)[None, :]
    x = (amplitude[:, None] * np.sin(steps * 0.4 + phase))[:, :, None].astype(np.float32)
    np.savez(folder / "data.waves.npz", X=x, y=amplitude)
    # A suffix of its own: the file is read by the new task's loader by default.
    (folder / "data.waves.npz").rename(folder / "data.waves")
    return folder / "data.waves"


def test_a_registered_task_is_known_by_name_and_by_its_files() -> None:
    assert "sequence_regression" in task_names()
    assert get_task("sequence_regression").metric == "mse"
    with pytest.raises(InputError, match=r"task must be one of .*'sequence_regression'"):
        get_task("regresion")


@pytest.mark.slow
def test_a_fourth_task_registered_in_one_file_tunes_end_to_end(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trials in a worker process (which imports this module to know the task),
    tracked in MLflow; the best model answers a served request and beats the mean."""
    monkeypatch.setenv("TUNER_STORAGE", stores.storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores.tracking)
    data = _write_waves(stores.root)
    result = tuner.tune(data, space, study="waves", trials=2, max_epochs=6, patience=6, seed=1)

    best = result.best
    assert records.get(result.study, records.OBJECTIVE) == "validation MSE"
    assert set(best["params"]) == {"units_0", "learning_rate"}
    assert best["val"]["mse"] == pytest.approx(result.best_trial.value)
    assert best["test"]["mse"] < result.baselines["mean_test"]["mse"]
    served = result.best_model()
    x = np.load(data.open("rb"))["X"][:3]
    answer = get_task("sequence_regression").respond(served.bundle, x, {})
    assert list(answer.columns) == ["amplitude"] and len(answer) == 3


def test_a_task_defined_in_the_running_script_is_refused_with_the_fix() -> None:
    """Worker processes import the module that defines a task; `__main__` (a script
    or notebook) cannot be imported there, so `register` says where to put it."""
    scripted = type("Scripted", (SequenceRegression,), {"__module__": "__main__"})
    with pytest.raises(TypeError, match=r"define the task in a module \(a \.py file\)"):
        register(scripted())
    assert "sequence_regression" in task_names()  # the module's own registration stands
