"""Character language models: the next character at every step of a text
window, scored in bits per character; a trained model continues a prompt.

Data: tuner.data.text (a `.txt` file, split in order, encoded as symbol ids).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from tuner.errors import InputError
from tuner.model.params import DEFAULTS, HEAD_WIDTH, RECURRENT, TRAINING
from tuner.tasks.base import Task, register

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from tuner.data.spec import Dataset, DatasetInfo, DatasetSpec

_WINDOWS = (64, 128, 256)  # default character windows: about a sentence and more of context
GENERATION = {"length": 200, "temperature": 1.0, "seed": 0}  # what a request may set


class CharLM(Task):
    """The next character at every step of a text window."""

    name = "char_lm"
    default_space = "char_lm"
    metric = "bpc"
    objective = "validation bits per character"
    suffixes = (".txt",)
    standardised = False  # symbol ids
    per_step = True
    input_name = "chars"
    reads_prompt = True
    # A character model reads the past only: never bidirectional.
    reads = TRAINING | RECURRENT - {"bidirectional"} | {
        "seq_len", "embedding_dim", "input_dropout", "attention",
    }  # fmt: skip
    never: ClassVar[Mapping[str, str]] = {
        "bidirectional": "a character model predicts each character from the ones before "
        "it, so it never reads ahead; "
    }

    def load(self, spec: DatasetSpec) -> Dataset:
        from tuner.data.text import load_text  # deferred: pandas, scikit-learn

        return load_text(spec)

    def window_choices(self, info: DatasetInfo) -> list[int]:
        if info.lookback:
            return info.seq_len_choices((0.5, 1, 2))
        return info.fitting(_WINDOWS)

    def window_rule(self, info: DatasetInfo) -> str:
        if info.lookback:
            return f"0.5, 1, 2 x lookback ({info.lookback})"
        return f"{', '.join(map(str, _WINDOWS))} characters"

    def train_windows(self, info: DatasetInfo, seq_len: int) -> int:
        return max(1, (info.n_train - 1) // seq_len)

    def targets_per_window(self, info: DatasetInfo, seq_len: int) -> int:
        return seq_len

    def shape(self, info: DatasetInfo) -> str:
        return f"{info.n_rows:,} characters, {info.vocab_size} symbols"

    def build(self, params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
        """Characters to next-character logits at every step (any input length);
        optionally with causal self-attention over the recurrent states."""
        import keras

        from tuner.model.blocks import EXACT, causal_self_attention
        from tuner.model.build import l2, recurrent_stack

        chars = keras.Input((None,), dtype="int32", name=self.input_name)
        x = keras.layers.Embedding(info.vocab_size, int(params["embedding_dim"]))(chars)
        if params["input_dropout"]:  # on the embedded characters: the small-text regulariser
            x = keras.layers.Dropout(float(params["input_dropout"]))(x)
        x = recurrent_stack(x, params, sequences=True)
        if params["attention"]:
            x = causal_self_attention(x)
        logits = keras.layers.Dense(
            info.vocab_size, kernel_regularizer=l2(params), name="logits", dtype=EXACT
        )(x)
        return keras.Model(chars, logits, name="char_model")

    def compile_args(self, info: DatasetInfo) -> dict[str, Any]:
        """Held-out windows mark the targets they read as context only (UNSCORED). The
        loss skips them exactly; Keras' cross-entropy metric would average them in as
        zeros under JAX (a JAX array carries no Keras mask), so there is no metric:
        the validation loss is the objective (see `objective_monitor`)."""
        import keras

        from tuner.data.text import UNSCORED

        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=UNSCORED)
        return {"loss": loss}

    def objective_monitor(self, info: DatasetInfo) -> tuple[str, float]:
        # No weight penalty unless a space tunes `l2`; nats to bits.
        return "val_loss", 1 / math.log(2)

    def size_inputs(
        self, info: DatasetInfo, candidates: Mapping[str, Any], largest: Mapping[str, Any]
    ) -> tuple[int, int]:
        steps = int(largest.get("seq_len", info.max_seq_len))
        return steps, int(largest.get("embedding_dim", DEFAULTS["embedding_dim"]))

    def size_head(
        self, info: DatasetInfo, largest: Mapping[str, Any], width: int, *, batch: int, steps: int
    ) -> tuple[int, int]:
        """The embedding, the logits and (where tuned) causal self-attention."""
        weights = info.vocab_size * int(largest.get("embedding_dim", DEFAULTS["embedding_dim"]))
        weights += (width + 1) * info.vocab_size
        saved = batch * steps * info.vocab_size * 2  # logits and their softmax
        if largest.get("attention"):  # causal self-attention: q, k, v, output, norm, update
            weights += 5 * width * width + 7 * width
            saved += batch * max(1, width // HEAD_WIDTH) * steps * steps  # every head's scores
        return weights, saved

    def ensemble_input(self, members: Any) -> Any:
        import keras

        return keras.Input((None,), dtype="int32", name=self.input_name)

    def respond(self, served: Any, request: Any, params: Mapping[str, Any]) -> pd.DataFrame:
        """A `prompt` column -> the prompts continued."""
        import pandas as pd

        from tuner.model.serving import generate

        if not isinstance(request, pd.DataFrame) or "prompt" not in request:
            raise InputError("request: a character model reads a table with a 'prompt' column.")
        settings = {**GENERATION, **params}
        texts = [
            generate(
                served,
                str(prompt),
                length=int(settings["length"]),
                temperature=float(settings["temperature"]),
                seed=int(settings["seed"]),
            )
            for prompt in request["prompt"]
        ]
        return pd.DataFrame({"prompt": request["prompt"].astype(str), "text": texts})

    def request_example(self, data: Any, seq_len: int) -> tuple[Any, dict[str, Any] | None]:
        """A prompt of the validation text."""
        import pandas as pd

        start = data.borders[0]
        prompt = "".join(data.vocab[c] for c in data.codes[start : start + max(20, seq_len)])
        return pd.DataFrame({"prompt": [prompt]}), dict(GENERATION, length=20)

    def predict(self, bundle: Any, data: Any, **options: Any) -> Any:
        from tuner.model.serving import generate

        if not isinstance(data, str):
            raise InputError("data: a character model continues a prompt; pass a string.")
        return generate(
            bundle,
            data,
            length=options["length"],
            temperature=options["temperature"],
            seed=options["seed"],
        )

    def figure(self, model: Any, data: Any, test: Any, params: Mapping[str, Any], name: str) -> Any:
        from tuner.model import params as hparams
        from tuner.report.model_figures import sampled_text

        return sampled_text(
            model, data, name, hparams.TrialParams.of(params, max_seq_len=100).window
        )


CHAR_LM = register(CharLM())
