"""Bad space for tests: one name defined with two different ranges."""


def space(hp, data):
    hp.Choice("seq_len", [8])
    hp.Int("units_0", 4, 8, step=4)
    hp.Int("units_0", 16, 32, step=16)
