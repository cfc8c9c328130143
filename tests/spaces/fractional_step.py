"""Bad space for tests: an integer range with a fractional step."""


def space(hp, data):
    hp.Choice("seq_len", [8])
    hp.Int("units_0", 4, 8, step=0.5)
