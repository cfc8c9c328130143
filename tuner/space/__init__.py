"""Search spaces in KerasTuner's `hp` vocabulary, run by Optuna.

A search space is a module exposing `space(hp, data)`: it calls `hp.Int`,
`hp.Float`, `hp.Choice`, `hp.Boolean` and `hp.Fixed` and returns nothing; the
choices it made are `hp.values`. `OptunaHP` maps each call to
`trial.suggest_*`; `ProbeHP` runs the space once before any training to check
every definition.

Example:

```python
def space(hp, data):
    hp.Choice("seq_len", data.seq_len_choices())
    for i in range(hp.Int("layers", 1, 3)):
        hp.Int(f"units_{i}", 16, 128, step=16)
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
```

Modules: `hp` (the hp objects), `replay` (defaults, grids, replaying values),
`loading` (finding, loading and probing a space module).
"""

from tuner.space.hp import OptunaHP, ProbeHP, SearchSpace
from tuner.space.loading import (
    PROBE_SECONDS,
    builtin_spaces,
    find_space,
    load_space,
    probe_in_child,
    probe_space,
)
from tuner.space.replay import MAX_GRID, default_configuration, grid_points, replay

__all__ = [
    "MAX_GRID",
    "PROBE_SECONDS",
    "OptunaHP",
    "ProbeHP",
    "SearchSpace",
    "builtin_spaces",
    "default_configuration",
    "find_space",
    "grid_points",
    "load_space",
    "probe_in_child",
    "probe_space",
    "replay",
]
