"""Discrete forecasting space for grid tests: 6 points (1 layer: 2 widths; 2 layers: 2 x 2)."""


def space(hp, data):
    hp.Fixed("seq_len", 8)
    layers = hp.Int("layers", 1, 2)
    for i in range(layers):
        hp.Int(f"units_{i}", 4, 8, step=4)
    hp.Fixed("batch_size", 256)
