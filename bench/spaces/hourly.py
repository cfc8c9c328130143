"""The default forecasting space with windows of one to seven days, for hourly
data such as ETTh1 (B2); every other knob is the default space's."""

from tuner.space import load_space


def space(hp, data):
    """Hourly forecasting: windows 24-168 steps, then the default forecasting space."""
    hp.Choice("seq_len", [24, 48, 96, 168])  # defined first: the default's seq_len reuses it
    load_space("forecasting").fn(hp, data)
