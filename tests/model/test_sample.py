"""Character generation: one compiled step for any prompt, the same characters as
the model would give on the short window itself."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from tuner.data.spec import DatasetInfo
from tuner.model.build import build_model
from tuner.model.sample import generate

VOCAB = ("\0", *"abcdefghij")
INFO = DatasetInfo(task="char_lm", n_features=1, n_rows=1000, n_train=800, max_seq_len=24,
                   vocab_size=len(VOCAB))  # fmt: skip


def _model(attention: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    params = {"seq_len": 12, "units_0": 16, "embedding_dim": 8, "attention": attention}
    return build_model(params, INFO)


@pytest.mark.parametrize("attention", [False, True])
def test_a_short_prompt_reads_as_it_would_alone(attention: bool) -> None:
    """Left in a full-length window, a short text gives the logits it gives alone
    (the model is causal), so padding the window changes no character."""
    model = _model(attention)
    codes = np.array([[3, 1, 4, 1, 5]], dtype=np.int32)
    alone = np.asarray(model(codes, training=False))[0, -1]
    window = np.zeros((1, 12), dtype=np.int32)
    window[0, :5] = codes
    padded = np.asarray(model.predict_on_batch(window))[0, 4]
    np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-5)


def test_generation_compiles_one_step_for_prompts_of_any_length() -> None:
    model = _model(attention=True)
    ran: list[Any] = []
    call = model.call

    def counted(*args: Any, **kwargs: Any) -> Any:
        ran.append(1)  # run once while the predict step is traced, then never again
        return call(*args, **kwargs)

    model.call = counted
    texts = [
        generate(model, VOCAB, prompt, context=12, length=30, temperature=1.0, seed=0)
        for prompt in ("a", "bcd", "abcdefghijabcdefghij")
    ]
    assert [len(t) for t in texts] == [31, 33, 50]
    assert set("".join(texts)) <= set(VOCAB[1:])  # never the unknown symbol
    assert len(ran) == 1, f"the model's Python ran {len(ran)} times for 90 characters"
    again = generate(model, VOCAB, "a", context=12, length=30, temperature=1.0, seed=0)
    assert again == texts[0]  # the seed decides
