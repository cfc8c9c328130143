"""Text sampled from a character model, one character at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner.data.text import encode


def generate(
    model: Any,
    vocab: tuple[str, ...],
    prompt: str,
    *,
    context: int,
    length: int,
    temperature: float,
    seed: int,
) -> str:
    """Continue `prompt` by `length` characters sampled at `temperature`, the model
    reading at most the last `context` characters.

    Every character costs one call of the model's compiled predict step on a window
    of exactly `context` codes, so one program serves any prompt (a new window length
    would be a new compilation, seconds each). While the text is shorter than the
    window it fills the window's start and the logits are read at its last
    character: a character model is causal (its cells run forward only, its
    self-attention is masked to the past), so what follows that position changes
    nothing before it.
    """
    codes = list(encode(prompt, vocab))
    rng = np.random.default_rng(seed)
    window = np.zeros((1, max(1, context)), dtype=np.int32)
    out = []
    for _ in range(length):
        recent = codes[-window.shape[1] :]
        window[0, : len(recent)] = recent
        logits = np.asarray(model.predict_on_batch(window))[0, len(recent) - 1]
        logits = logits.astype(np.float64)
        logits[0] = -np.inf  # never emit the unknown symbol
        p = np.exp((logits - logits.max()) / temperature)
        code = int(rng.choice(len(p), p=p / p.sum()))
        codes.append(code)
        out.append(vocab[code])
    return prompt + "".join(out)
