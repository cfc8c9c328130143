"""Classification space without a convolutional branch: it cannot express LSTM-FCN."""


def space(hp, data):
    hp.Int("units_0", 4, 8, step=4)
    hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
    hp.Choice("batch_size", [16, 32])
