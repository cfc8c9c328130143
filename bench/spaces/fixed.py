"""One fixed forecasting configuration: every trial does the same work, so trial
throughput compares like with like (used by the parallel-workers benchmark)."""


def space(hp, data):
    """Fixed: window 52, one LSTM(32), Adam 1e-3, batch 64."""
    hp.Fixed("seq_len", 52)
    hp.Fixed("layers", 1)
    hp.Fixed("units_0", 32)
    hp.Fixed("learning_rate", 1e-3)
    hp.Fixed("batch_size", 64)
