"""Classification space with a conv branch but only large batches."""


def space(hp, data):
    hp.Int("units_0", 4, 8, step=4)
    hp.Int("conv_layers", 0, 3)
    hp.Choice("conv_filters", [16, 128])
    hp.Choice("batch_size", [32, 64])
