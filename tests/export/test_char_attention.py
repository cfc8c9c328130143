"""A character model with causal self-attention: a tiny study trains it, exports
it, and a fresh process loads the bundle and generates text from a prompt."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, Stores
from tuner.cli.main import main
from tuner.model.layers import load_model

pytestmark = pytest.mark.slow

SPACE = """
def space(hp, data):
    hp.Fixed("seq_len", 32)
    hp.Fixed("units_0", 16)
    hp.Fixed("embedding_dim", 8)
    hp.Fixed("attention", True)
    hp.Fixed("batch_size", 256)
"""


def test_an_attention_character_model_trains_exports_and_generates(stores: Stores) -> None:
    space = stores.root / "attention.py"
    space.write_text(SPACE)
    args = ["tune", "--dataset", "alice", "--study", "att", "--space", str(space)]
    assert main([*args, "--trials", "1", "--max-epochs", "1", *stores.args()]) == 0
    bundle = stores.root / "bundle"
    assert main(["export", "--study", "att", "--out", str(bundle), *stores.args()]) == 0
    model = load_model(bundle / "model.keras")  # safe mode: built-in layers only
    assert any(layer.name == "self_attention" for layer in model.layers)
    code = (
        "import sys, tuner; "
        "print(tuner.load_bundle(sys.argv[1]).predict('Alice was', length=40, seed=1))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bundle)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    text = out.strip().splitlines()[-1]
    assert text.startswith("Alice was") and len(text) >= len("Alice was") + 30, out
