"""The search space of the search-efficiency benchmark (B1): the forecasting
knobs that matter most, with ranges that keep one epoch short on co2."""


def space(hp, data):
    """B1: window, LSTM/GRU, 1-2 layers, width, dropout, optimizer, learning rate, batch."""
    hp.Choice("seq_len", [26, 52])
    hp.Choice("cell", ["lstm", "gru"])
    for i in range(hp.Int("layers", 1, 2)):
        hp.Int(f"units_{i}", 16, 64, step=16)
    hp.Float("dropout", 0.0, 0.3, step=0.05)
    hp.Choice("normalize", ["last", "none"])
    hp.Choice("optimizer", ["adam", "rmsprop"])
    hp.Float("learning_rate", 1e-4, 3e-2, sampling="log")
    hp.Choice("batch_size", [32, 64, 128])
