"""Default forecasting space: window, LSTM or GRU, depth, width, regularisation, schedule.

The knobs follow what the LSTM forecasting literature tunes. Ranges adapt to the
data: the window is a multiple of the seasonal period (or of the horizon) and
never longer than the training split allows.

cuDNN: the recurrent layers keep tanh/sigmoid activations and no recurrent
dropout, so on a GPU they run the fused cuDNN kernel; dropout is applied
between layers instead.
"""


def space(hp, data):
    """Forecasting: LSTM or GRU, 1-3 layers, last-value normalisation."""
    hp.Choice("seq_len", data.seq_len_choices((0.5, 1, 2)))
    hp.Choice("cell", ["lstm", "gru"])
    layers = hp.Int("layers", 1, 3)
    for i in range(layers):
        hp.Int(f"units_{i}", 16, 64, step=16)
    hp.Float("dropout", 0.0, 0.4, step=0.05)
    hp.Boolean("layer_norm")
    hp.Boolean("attention")
    hp.Choice("normalize", ["last", "none"])
    optimizer = hp.Choice("optimizer", ["adam", "rmsprop", "sgd"])
    if optimizer == "sgd":
        hp.Choice("momentum", [0.9, 0.99])
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    hp.Choice("clipnorm", [0.0, 1.0, 5.0])
    hp.Float("l2", 1e-7, 1e-3, sampling="log")
    hp.Choice("lr_schedule", ["constant", "plateau", "cosine"])
    hp.Choice("batch_size", [64, 128, 256])
