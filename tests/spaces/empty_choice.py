def space(hp, data):
    hp.Choice("seq_len", [8])
    hp.Choice("optimizer", [])
