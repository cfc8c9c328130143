"""What a task is: the `Task` base class and the registry of tasks.

A task (forecasting, sequence classification, character language model, or one
a user registers) is one object in one module under `tuner/tasks/`: its
capabilities as data (`metric`, `windowed`, `suffixes`, ...) and its own code
(loader, model head and loss, sizes, serving, figures). Code outside the task
modules asks `get_task(name)`; it does not branch on the name.

This module sits in the lowest import layer, so the data, model and report
layers can ask a task what it does; the task modules sit above them and import
what they need (dependency inversion: the built-in tasks are imported by name on
first use, a user's task by `register`). The task modules import Keras, pandas
and their data readers (scikit-learn) only inside the methods that need them: the
parent process never loads Keras, and the child that probes a user's space within
its time limit (eight `tuner worker`s starting at once on two cores) stays light.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from tuner.errors import InputError, Opt

if TYPE_CHECKING:
    import keras
    import numpy as np
    import pandas as pd

# The data layer imports this module, so its types are named, not imported, here
# (the task modules, above it, annotate them exactly): a DatasetSpec, a DatasetInfo
# and a loaded Dataset (tuner.data.spec).
DatasetSpec: TypeAlias = Any
DatasetInfo: TypeAlias = Any
Dataset: TypeAlias = Any

BUILTIN = ("forecasting", "classification", "char_lm")


class Task:
    """One kind of learning problem. A subclass sets the class attributes and
    implements the methods that raise `NotImplementedError`; the others have the
    defaults most tasks want."""

    name: ClassVar[str]
    metric: ClassVar[str]  # the validation metric trials are selected by (lower is better)
    objective: ClassVar[str]  # the same in words, for the study's record
    suffixes: ClassVar[tuple[str, ...]] = ()  # data files read as this task by default
    needs_target: ClassVar[bool] = False  # a table: the definition must name the target
    min_steps: ClassVar[int] = 8  # fewest optimizer steps a pass of the default batches leaves
    windowed: ClassVar[bool] = True  # inputs are windows of `seq_len` steps (else whole sequences)
    standardised: ClassVar[bool] = True  # inputs standardised by a scaler fit on training rows
    outputs_in_units: ClassVar[bool] = False  # outputs are standardised values too
    input_name: ClassVar[str] = "sequence"  # the model's input layer
    per_step: ClassVar[bool] = False  # a prediction at every step of inputs of any length
    reads_prompt: ClassVar[bool] = False  # predicts from a prompt, not from a data file
    # The search space used when `--space` is not given: the built-in one named after
    # the task (search_spaces/NAME.py); a task without one needs `--space`.
    default_space: ClassVar[str | None] = None
    reads: ClassVar[frozenset[str]] = frozenset()  # the parameters its model reads
    never: ClassVar[Mapping[str, str]] = {}  # parameters it refuses to read, and why

    # Data --------------------------------------------------------------------------
    def load(self, spec: DatasetSpec) -> Dataset:
        """Read, check, split and scale (or encode) the data."""
        raise NotImplementedError

    def window_choices(self, info: DatasetInfo) -> list[int]:
        """The default spaces' window lengths for this data: multiples of the
        lookback, else of the seasonal period, else of the horizon."""
        if info.lookback:
            return list(info.seq_len_choices((1, 2, 3)))
        if info.seasonal_period:
            return list(info.seq_len_choices((1, 2, 4, 7)))
        return list(info.fitting(m * max(info.horizon, 8) for m in (2, 4, 8)))

    def window_rule(self, info: DatasetInfo) -> str:
        """How `window_choices` is derived, in words."""
        if info.lookback:
            return f"1, 2, 3 x lookback ({info.lookback})"
        if info.seasonal_period:
            return f"1, 2, 4, 7 x seasonal period ({info.seasonal_period})"
        return f"2, 4, 8 x max(horizon, 8) steps ({info.horizon})"

    def train_windows(self, info: DatasetInfo, seq_len: int) -> int:
        """Training windows (samples) one pass holds at window length `seq_len`."""
        return int(info.n_train if not self.windowed else max(1, info.n_train - seq_len))

    def targets_per_window(self, info: DatasetInfo, seq_len: int) -> int:
        """What one training window teaches (a label, a forecast, a target a step)."""
        return 1

    def window_limit(self, info: DatasetInfo) -> str:
        """What a window needs beyond its own steps, in words (" + 1")."""
        return " + 1"

    def default_ensemble(self, info: DatasetInfo) -> int:
        """Members of the top-K ensemble when `--ensemble` is left out (0: none)."""
        return 0

    def shape(self, info: DatasetInfo) -> str:
        """The data's size in a few words, for the study's header."""
        return f"{info.n_rows} rows x {info.n_features} features"

    # Model -------------------------------------------------------------------------
    def build(self, params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
        """The model for these parameters (not compiled)."""
        raise NotImplementedError

    def compile_args(self, info: DatasetInfo) -> dict[str, Any]:
        """Loss and metrics for `model.compile`; one metric is the objective's. The
        loss is a `keras.losses.Loss` (fused trials call it on each member's batch)."""
        raise NotImplementedError

    def objective_monitor(self, info: DatasetInfo) -> tuple[str, float]:
        """The per-epoch Keras log that equals the objective once multiplied by the
        factor (what pruning reports)."""
        return f"val_{self.metric}", 1.0

    def size_inputs(
        self, info: DatasetInfo, candidates: Mapping[str, Sequence[Any]], largest: Mapping[str, Any]
    ) -> tuple[int, int]:
        """Steps and features the recurrent stack of the largest model reads."""
        return int(largest.get("seq_len", info.max_seq_len)), info.n_features

    def size_head(
        self, info: DatasetInfo, largest: Mapping[str, Any], width: int, *, batch: int, steps: int
    ) -> tuple[int, int]:
        """Weights and saved activations of what follows the recurrent stack."""
        raise NotImplementedError

    def ensemble_input(self, members: Sequence[keras.Model]) -> keras.KerasTensor:
        """The input of a model averaging `members`: the longest any member reads."""
        import keras

        shape = max((m.input_shape[1:] for m in members), key=lambda s: s[0] or 0)
        return keras.Input(shape, name=self.input_name)

    # Serving -----------------------------------------------------------------------
    def respond(self, served: Any, request: Any, params: Mapping[str, Any]) -> pd.DataFrame:
        """A served model's answer to one request."""
        raise NotImplementedError

    def request_example(self, data: Any, seq_len: int) -> tuple[Any, dict[str, Any] | None]:
        """A request in the raw form the served model takes (from the validation part)."""
        raise NotImplementedError

    def served_signature(self, signature: Any) -> Any:
        """The MLflow signature of a served model, loosened where the model's own
        checks answer better than MLflow's schema check (as inferred: unchanged)."""
        return signature

    def predict(self, bundle: Any, data: Any, **options: Any) -> Any:
        """The Python API's `Model.predict` for this task."""
        raise NotImplementedError

    def predict_file(self, bundle: Any, path: Any, rows: Any) -> pd.DataFrame:
        """`tuner predict --input FILE`: the predictions for a data file."""
        raise InputError(f"{Opt('input')}: a {self.name} model reads no input file.")

    def figure(self, model: Any, data: Any, test: Any, params: Mapping[str, Any], name: str) -> Any:
        """The trained model on the test split, drawn (a matplotlib figure)."""
        raise NotImplementedError

    def raw_inputs(self, x: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
        """Model inputs back in the data's units (standardised inputs un-scaled)."""
        if not self.standardised:
            return x
        import numpy as np

        mean = np.asarray(preprocessing["mean"], np.float32)
        scale = np.asarray(preprocessing["scale"], np.float32)
        return (np.asarray(x, np.float32) * scale + mean).astype(np.float32)


_TASKS: dict[str, Task] = {}
_PLUGINS: dict[str, str] = {}  # registered task -> module that registers it (not built in)


def register(task: Task) -> Task:
    """Make `task` known by its name (a new name, or a built-in one replaced). Worker
    processes import the module that defines it, so a task lives in a module: one
    defined in the script or notebook being run (`__main__`) is refused."""
    if not getattr(task, "name", ""):
        raise TypeError(f"register: {type(task).__name__} has no name")
    module = type(task).__module__
    if module == "__main__":
        raise TypeError(
            f"register: {type(task).__name__} is defined in the script or notebook being run, "
            "which worker processes cannot import; define the task in a module (a .py file) "
            "and import it from there."
        )
    _TASKS[task.name] = task
    if module != f"tuner.tasks.{task.name}":  # not the built-in one: workers import it
        _PLUGINS[task.name] = module
    return task


def get_task(name: str) -> Task:
    """The registered task called `name`."""
    if name not in _TASKS and name in BUILTIN:
        importlib.import_module(f"tuner.tasks.{name}")  # registers itself
    if name not in _TASKS:
        raise InputError(
            f"task must be one of {task_names()}, but got task={name!r}; "
            "register a new task with tuner.tasks.base.register."
        )
    return _TASKS[name]


def task_names() -> tuple[str, ...]:
    """Every task known: the built-in ones and those registered."""
    return tuple(dict.fromkeys((*BUILTIN, *_TASKS)))


def task_for_suffix(suffix: str) -> str | None:
    """The task that reads data files ending in `suffix` by default."""
    for name in task_names():
        if suffix in get_task(name).suffixes:
            return name
    return None


def plugin_modules() -> tuple[str, ...]:
    """Modules that registered tasks beyond the built-in ones (a worker imports them)."""
    return tuple(sorted(set(_PLUGINS.values())))


def import_plugins(modules: Sequence[str]) -> None:
    """Import the modules that registered tasks in the invoking process."""
    for module in modules:
        if module not in sys.modules:
            importlib.import_module(module)
