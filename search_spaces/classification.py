"""Default sequence-classification space: LSTM or GRU, optionally bidirectional.

Sequences keep their own length (padded steps are masked), so there is no
window to tune. Attention pooling over time is an option beside the last
state. Layers keep cuDNN-eligible settings (tanh/sigmoid, no recurrent dropout).
"""


def space(hp, data):
    """Classification: cell, direction, depth, width, attention, regularisation, optimiser."""
    hp.Choice("cell", ["lstm", "gru"])
    hp.Boolean("bidirectional")
    layers = hp.Int("layers", 1, 2)
    for i in range(layers):
        hp.Int(f"units_{i}", 16, 128, step=16)
    hp.Float("dropout", 0.0, 0.5, step=0.05)
    hp.Boolean("attention")
    hp.Choice("optimizer", ["adam", "rmsprop"])
    hp.Float("learning_rate", 3e-4, 3e-2, sampling="log")
    hp.Choice("clipnorm", [0.0, 1.0])
    hp.Float("l2", 1e-7, 1e-3, sampling="log")
    hp.Choice("lr_schedule", ["constant", "plateau", "cosine"])
    hp.Choice("batch_size", [16, 32, 64])
