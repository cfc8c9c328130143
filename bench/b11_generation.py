"""B11 character generation speed: characters per second of `tuner predict --prompt`'s
sampling loop (tuner/model/sample.py) on the model B2 chose for alice.

The model: B2's alice champion configuration (LSTM(256) over 32-dimensional
embeddings, window 64; fixed here so the figure does not move with B2's search),
with its initial weights: the time a character takes does not depend on the
weights. Each prompt (10 and 200 characters) is continued by 200 characters, first
in a fresh model (what one `tuner predict` pays, compilation included), then three
more times (the median is the steady speed). Each Keras backend runs in its own
process. Target: at least 200 characters per second from a fresh model on this
2-core CPU, with the default backend.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from common import ROOT, environment, first_gpu

from tuner.devices import default_backend

BACKENDS = ("jax", "tensorflow", "torch")
PARAMS = {"seq_len": 64, "embedding_dim": 32, "input_dropout": 0.1, "cell": "lstm",
          "units_0": 256, "dropout": 0.4, "batch_size": 16}  # fmt: skip
VOCAB = 64  # alice's vocabulary is 60-odd characters
PROMPTS = (10, 200)
LENGTH = 200
TARGET = 200.0  # characters per second


def _measure() -> dict[str, Any]:
    import keras

    from tuner.data.spec import DatasetInfo
    from tuner.model.build import build_model
    from tuner.model.sample import generate

    vocab = ("\0", *(chr(32 + i) for i in range(VOCAB - 1)))
    info = DatasetInfo(task="char_lm", n_features=1, n_rows=144_000, n_train=115_000,
                       max_seq_len=14_000, vocab_size=VOCAB)  # fmt: skip
    rows = []
    for chars in PROMPTS:
        keras.utils.set_random_seed(0)
        model = build_model(PARAMS, info)  # fresh: its first call compiles
        prompt = "".join(vocab[1 + i % (VOCAB - 1)] for i in range(chars))
        seconds = []
        for _ in range(4):
            start = time.perf_counter()
            generate(model, vocab, prompt, context=64, length=LENGTH, temperature=1.0, seed=0)
            seconds.append(time.perf_counter() - start)
        rows.append({
            "prompt_chars": chars,
            "first_s": round(seconds[0], 3),
            "first_chars_per_s": round(LENGTH / seconds[0], 1),
            "steady_chars_per_s": round(LENGTH / statistics.median(seconds[1:]), 1),
        })  # fmt: skip
    return {"backend": keras.backend.backend(), "rows": rows}


def _run_backend(backend: str) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, __file__, "--one"], env=env, capture_output=True, text=True,
        check=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool) -> dict[str, Any]:
    del quick  # under a minute in full
    installed = [b for b in BACKENDS if importlib.util.find_spec(b)]
    results = []
    for backend in installed:
        result = _run_backend(backend)
        print(f"B11 {backend}: {result['rows']}", flush=True)
        results.append(result)
    default = default_backend(gpu=first_gpu())
    slowest = min(
        row["first_chars_per_s"] for r in results if r["backend"] == default for row in r["rows"]
    )
    return {
        **environment(),
        "model": "Embedding(64, 32) -> LSTM(256) -> Dense(64); window 64",
        "length": LENGTH,
        "results": results,
        "default": default,
        "target": TARGET,
        "slowest_first_chars_per_s": slowest,
        "target_met": slowest >= TARGET,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", action="store_true", required=True)
    parser.parse_args()
    print(json.dumps(_measure()))
