"""Default sequence-classification space: LSTM or GRU, optionally bidirectional,
with the LSTM-FCN families that work on long series.

Sequences keep their own length (padded steps are masked), so there is no
window to tune. Beside the recurrent branch: an optional convolutional branch
(Conv1D + batch norm + ReLU, 1-3 blocks, averaged over the real steps,
concatenated as in LSTM-FCN, Karim et al. 2017); per-sequence z-normalisation
(over the real steps of padded sequences); for fixed-length data the dimension
shuffle (the recurrent branch reads the transposed series); on long sequences
(512 steps or more) average pooling of the input by 2-8 (a round's arithmetic
cut by as much). Batch sizes leave an epoch enough steps on small sets. Layers
keep cuDNN-eligible settings (tanh/sigmoid, no recurrent dropout).
"""


def space(hp, data):
    """Classification: recurrent branch, optional conv branch (LSTM-FCN), z-norm, shuffle."""
    hp.Choice("cell", ["lstm", "gru"])
    hp.Boolean("bidirectional")
    layers = hp.Int("layers", 1, 2)
    for i in range(layers):
        hp.Int(f"units_{i}", 16, 128, step=16)
    hp.Float("dropout", 0.0, 0.5, step=0.05)
    hp.Boolean("attention")
    if hp.Int("conv_layers", 0, 3):
        hp.Choice("conv_filters", [32, 64, 128])
    hp.Boolean("seq_norm")
    if not data.variable_length:
        hp.Boolean("dim_shuffle")
    if len(pools := data.pool_choices()) > 1:
        hp.Choice("pool", pools)
    hp.Choice("optimizer", ["adam", "rmsprop"])
    hp.Float("learning_rate", 3e-4, 3e-2, sampling="log")
    hp.Choice("clipnorm", [0.0, 1.0])
    hp.Float("l2", 1e-7, 1e-3, sampling="log")
    hp.Choice("lr_schedule", ["constant", "plateau", "cosine"])
    hp.Choice("batch_size", data.batch_size_choices((16, 32, 64)))
