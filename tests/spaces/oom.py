"""A space where one choice cannot fit in memory: LSTM(300000) needs a 1.4 TB
recurrent kernel, so building it raises the backend's out-of-memory error."""


def space(hp, data):
    hp.Fixed("seq_len", 26)
    hp.Choice("units_0", [8, 300000])
    hp.Fixed("batch_size", 128)
