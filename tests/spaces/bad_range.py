def space(hp, data):
    hp.Choice("seq_len", [8])
    hp.Int("units_0", 64, 16)
