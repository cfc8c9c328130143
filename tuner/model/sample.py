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

    Windows of the full `context` go through the model's compiled predict step
    (one program for that shape, milliseconds a character); shorter ones, while a
    short prompt grows, run eagerly (a compiled step per length would cost more).
    """
    codes = list(encode(prompt, vocab))
    rng = np.random.default_rng(seed)
    context = max(1, context)
    out = []
    for _ in range(length):
        window = np.asarray([codes[-context:]], dtype=np.int32)
        if window.shape[1] == context:
            logits = np.asarray(model.predict_on_batch(window))[0, -1].astype(np.float64)
        else:
            logits = np.asarray(model(window, training=False))[0, -1].astype(np.float64)
        logits[0] = -np.inf  # never emit the unknown symbol
        p = np.exp((logits - logits.max()) / temperature)
        code = int(rng.choice(len(p), p=p / p.sum()))
        codes.append(code)
        out.append(vocab[code])
    return prompt + "".join(out)
