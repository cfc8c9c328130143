"""Default forecasting space: window, normalisation, naive head, LSTM or GRU,
depth, width, regularisation, schedule.

The knobs follow what the LSTM forecasting literature tunes. Ranges adapt to the
data: windows are multiples of the lookback or of the seasonal period (a week
of hourly data), never longer than the training split allows (`tuner datasets`
states each dataset's rule); batch sizes leave an epoch enough steps. The naive
forecasts are inside the space: with a residual head the model starts at
persistence (or at the seasonal naive forecast, offered when every window holds
a whole season) and learns the correction; reversible instance normalisation
(RevIN) guards against a shift in level or scale between periods.

cuDNN: the recurrent layers keep tanh/sigmoid activations and no recurrent
dropout, so on a GPU they run the fused cuDNN kernel; dropout is applied
between layers instead.
"""


def space(hp, data):
    """Forecasting: window, RevIN or last-value normalisation, naive residual head, 1-3 layers."""
    windows = data.window_choices()
    hp.Choice("seq_len", windows)
    hp.Choice("normalize", ["revin", "last", "none"])
    heads = ["persistence", "none"]
    if data.seasonal_period and data.seasonal_period <= min(windows):
        heads.append("seasonal")
    hp.Choice("naive_head", heads)
    hp.Choice("cell", ["lstm", "gru"])
    layers = hp.Int("layers", 1, 3)
    for i in range(layers):
        hp.Int(f"units_{i}", 16, 64, step=16)
    hp.Float("dropout", 0.0, 0.4, step=0.05)
    hp.Boolean("layer_norm")
    hp.Boolean("attention")
    optimizer = hp.Choice("optimizer", ["adam", "rmsprop", "sgd"])
    if optimizer == "sgd":
        hp.Choice("momentum", [0.9, 0.99])
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    hp.Choice("clipnorm", [0.0, 1.0, 5.0])
    hp.Float("l2", 1e-7, 1e-3, sampling="log")
    hp.Choice("lr_schedule", ["constant", "plateau", "cosine"])
    hp.Choice("batch_size", data.batch_size_choices((64, 128, 256)))
