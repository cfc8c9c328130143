"""Tiny character space for tests: a small embedding, a few units, short windows."""


def space(hp, data):
    hp.Choice("seq_len", [16, 32])
    hp.Fixed("embedding_dim", 8)
    hp.Int("units_0", 4, 8, step=4)
    hp.Float("learning_rate", 3e-3, 3e-2, sampling="log")
    hp.Fixed("batch_size", 256)
