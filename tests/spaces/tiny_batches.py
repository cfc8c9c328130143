"""Tiny forecasting space whose batch size and window length are both tuned."""


def space(hp, data):
    hp.Choice("seq_len", [8, 16])
    hp.Int("units_0", 4, 8, step=4)
    hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
    hp.Choice("batch_size", [128, 256])
