"""Default character language-model space: embedding, LSTM or GRU stack, window.

The window (characters of context per training sequence) is 64, 128 or 256
characters (multiples of the lookback where a definition sets one), capped by
the shortest split; batch sizes leave an epoch enough steps. Gradients are
always clipped, as recurrent language models need. Layers keep cuDNN-eligible settings.
"""


def space(hp, data):
    """Character model: window, embedding, cell, depth, width, dropout, optimiser."""
    hp.Choice("seq_len", data.window_choices())
    hp.Choice("embedding_dim", [16, 32, 64])
    hp.Choice("cell", ["lstm", "gru"])
    layers = hp.Int("layers", 1, 2)
    for i in range(layers):
        hp.Int(f"units_{i}", 64, 256, step=64)
    hp.Float("dropout", 0.0, 0.3, step=0.05)
    hp.Choice("optimizer", ["adam", "rmsprop"])
    hp.Float("learning_rate", 1e-3, 3e-2, sampling="log")
    hp.Choice("clipnorm", [1.0, 5.0])
    hp.Choice("lr_schedule", ["constant", "plateau", "cosine"])
    hp.Choice("batch_size", data.batch_size_choices((32, 64, 128)))
