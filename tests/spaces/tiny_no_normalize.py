"""The tiny space without its `normalize` choice (a warm start drops that parameter)."""


def space(hp, data):
    hp.Choice("seq_len", [8, 16])
    layers = hp.Int("layers", 1, 2)
    for i in range(layers):
        hp.Int(f"units_{i}", 4, 8, step=4)
    hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
    hp.Fixed("batch_size", 256)
