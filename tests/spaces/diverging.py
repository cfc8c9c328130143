"""A space where some trials use a learning rate that makes SGD diverge."""


def space(hp, data):
    hp.Fixed("seq_len", 8)
    hp.Fixed("units_0", 4)
    hp.Fixed("optimizer", "sgd")
    hp.Choice("learning_rate", [1e-3, 1e18])
    hp.Fixed("batch_size", 256)
