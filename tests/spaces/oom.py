"""A space where one choice cannot fit in memory: LSTM(300000) needs a 1.4 TB
recurrent kernel (about 5 TB to train), so its trial fails as out of memory."""


def space(hp, data):
    hp.Fixed("seq_len", 26)
    hp.Choice("units_0", [8, 300000])
    hp.Fixed("batch_size", 128)
