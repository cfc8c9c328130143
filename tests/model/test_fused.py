"""Fused trials (tuner/model/fused.py): K members of one structure trained as one
vmapped program train as each would alone, keep their own learning rates, stop one
at a time, and come out as ordinary Keras models. Real Keras on real JAX, in a
process of its own: this test process runs Keras on its default backend."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHECKS = Path(__file__).with_name("fused_checks.py")
NAMES = (
    "each_member_trains_as_it_would_alone",
    "a_stopped_member_keeps_its_weights_while_the_others_train",
    "a_compacted_group_computes_its_active_members_alone_and_the_same",
    "one_members_rate_changes_alone_and_its_model_saves_as_any_other",
    "each_member_stops_on_its_own_and_keeps_its_best_round",
    "no_best_round_and_no_stop_before_the_familys_share",
    "a_binary_classifiers_group_loss_is_keras_val_loss",
    "each_member_trains_with_its_own_weight_penalty",
)
pytestmark = [
    pytest.mark.slow,  # a JAX process that compiles and trains
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None,
        reason="fused trials need JAX (the jax extra; `make install` installs it)",
    ),
]


@pytest.fixture(scope="module")
def passed() -> set[str]:
    done = subprocess.run(
        [sys.executable, str(CHECKS)],
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = set(done.stdout.split("\n"))
    if done.returncode != 0:
        pytest.fail(f"fused checks failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return {line.removeprefix("ok ") for line in lines if line.startswith("ok ")}


@pytest.mark.parametrize("name", NAMES)
def test_fused_group(passed: set[str], name: str) -> None:
    assert name in passed
