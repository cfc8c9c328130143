"""Keras backends and devices: a tiny study under every installed backend, one
worker per GPU, mixed precision.

This machine has no GPU: the GPU test checks what can be checked without one
(each worker process is given its own GPU id and trains), not GPU speed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT, Stores, start_tuner, tiny_tune_args
from tuner.devices import default_backend

INSTALLED = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]


@pytest.mark.slow
@pytest.mark.parametrize("backend", INSTALLED)
def test_tiny_study_under_each_installed_backend(backend: str, stores: Stores) -> None:
    proc = start_tuner(
        *tiny_tune_args(stores, study=backend, trials=2), env={"KERAS_BACKEND": backend}
    )
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    study = optuna.load_study(study_name=backend, storage=stores.storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete, [t.user_attrs.get("fail_reason") for t in study.trials]
    assert {t.user_attrs["device"] for t in study.trials} == {f"{backend}:cpu"}
    assert all(t.value is not None and t.value > 0 for t in complete)


def test_jax_is_installed_by_make_install() -> None:
    assert "jax" in INSTALLED, "the jax extra is part of `make install`"


@pytest.mark.slow
def test_cpu_workers_default_to_jax_gpu_workers_to_tensorflow(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_backend(gpu=None) == "jax"
    assert default_backend(gpu="0") == "tensorflow"  # its cuDNN kernels
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    proc = start_tuner(*tiny_tune_args(stores, study="unset", trials=2))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    study = optuna.load_study(study_name="unset", storage=stores.storage)
    assert {t.user_attrs["device"] for t in study.trials} == {"jax:cpu"}


_JAX_WORKER = """
import sys
import keras
import numpy as np
from tuner.devices import import_keras_quietly

import_keras_quietly()
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4, 1)), keras.layers.LSTM(3), keras.layers.Dense(1)])
model.compile(loss="mse")
model.fit(np.ones((8, 4, 1)), np.ones((8, 1)), verbose=0)
model.save(sys.argv[1])
print("tensorflow" in sys.modules)
"""


@pytest.mark.slow
def test_a_jax_worker_seeds_trains_and_saves_without_importing_tensorflow(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _JAX_WORKER, str(tmp_path / "m.keras")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "m.keras").stat().st_size > 0


@pytest.mark.slow
def test_one_worker_per_gpu_in_mixed_precision(stores: Stores) -> None:
    # Two GPU ids announced: by default one worker per GPU, each worker sees only
    # its own id. No GPU exists here, so the backend trains on the CPU.
    proc = start_tuner(
        *tiny_tune_args(stores, study="gpus", trials=4),
        "--precision",
        "mixed_bfloat16",
        env={"CUDA_VISIBLE_DEVICES": "0,1"},
    )
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    study = optuna.load_study(study_name="gpus", storage=stores.storage)
    assert {t.user_attrs["gpu"] for t in study.trials} == {"0", "1"}
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials), [
        t.user_attrs.get("fail_reason") for t in study.trials
    ]


_MIXED_JAX_CELLS = """
import keras
keras.config.set_dtype_policy("mixed_bfloat16")
from tuner.data.spec import DatasetInfo
from tuner.model.build import build_model
info = DatasetInfo(task="forecasting", n_features=1, n_targets=1, n_rows=500, n_train=300,
                   max_seq_len=100, horizon=2)
recurrent = (keras.layers.LSTM, keras.layers.GRU)
for cell in ("lstm", "gru"):
    model = build_model({"seq_len": 8, "cell": cell, "units_0": 4}, info)
    policies = {l.dtype_policy.name for l in model.layers if isinstance(l, recurrent)}
    print(cell, *sorted(policies))
"""


def test_an_lstm_under_jax_with_a_mixed_policy_computes_in_float32() -> None:
    # On a GPU, Keras' JAX LSTM is cuDNN's, which takes float32 only (every
    # mixed_bfloat16 trial failed on an H200); the GRU keeps the mixed policy.
    done = subprocess.run(
        [sys.executable, "-c", _MIXED_JAX_CELLS],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["lstm float32", "gru mixed_bfloat16"]
