"""Default character language-model space: embedding, LSTM or GRU stack, optional
causal self-attention, window.

The window (characters of context per training sequence) is 64, 128 or 256
characters (multiples of the lookback where a definition sets one), capped by
the shortest split; batch sizes leave an epoch enough steps. Small texts
overfit: dropout reaches 0.5 between layers, and dropout on the embedded
characters is a knob of its own (on the 115,000 training characters of
`alice`, input dropout 0.2 with dropout 0.5 validated 0.05 bits per character
better than the earlier best). Attention: multi-head self-attention over the
recurrent states, masked so each step sees only the steps before it, so text
is still generated left to right. Gradients are always clipped, as recurrent
language models need. Layers keep cuDNN-eligible settings.

The defaults (`default=`) are a study's first trial: one GRU layer of 256 units
over the longest window, dropout 0.5, input dropout 0.2, Adam at 0.01 with a
cosine schedule and batches of 16, the configuration that did best on `alice`
when tried by hand (batches of 16 against 32, same epoch limit, 2-core CPU:
validation 2.154 against 2.160 bits per character, 114 s against 168 s a trial,
so a budget runs about 1.5 times the trials).
"""


def space(hp, data):
    """Character model: window, embedding, cell, depth, width, dropout, attention, optimiser."""
    windows = data.window_choices()
    hp.Choice("seq_len", windows, default=max(windows))
    hp.Choice("embedding_dim", [16, 32, 64], default=64)
    hp.Choice("input_dropout", [0.0, 0.1, 0.2, 0.3], default=0.2)
    hp.Choice("cell", ["lstm", "gru"], default="gru")
    layers = hp.Int("layers", 1, 2)
    for i in range(layers):
        hp.Int(f"units_{i}", 64, 256, step=64, default=256)
    hp.Float("dropout", 0.0, 0.5, step=0.05, default=0.5)
    hp.Boolean("attention")
    hp.Choice("optimizer", ["adam", "rmsprop"])
    hp.Float("learning_rate", 1e-3, 3e-2, sampling="log", default=1e-2)
    hp.Choice("clipnorm", [1.0, 5.0])
    hp.Choice("lr_schedule", ["constant", "plateau", "cosine"], default="cosine")
    batches = data.batch_size_choices((16, 32, 64, 128))
    hp.Choice("batch_size", batches, default=batches[0])
