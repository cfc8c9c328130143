"""Search spaces in KerasTuner's `hp` vocabulary, run by Optuna.

A search space is a module exposing `space(hp, data)`: it calls `hp.Int`,
`hp.Float`, `hp.Choice`, `hp.Boolean` and `hp.Fixed` and returns nothing; the
choices it made are `hp.values`. `OptunaHP` maps each call to
`trial.suggest_*`; `ProbeHP` runs the space once before any training to check
every definition.

Example::

    def space(hp, data):
        hp.Choice("seq_len", data.seq_len_choices())
        for i in range(hp.Int("layers", 1, 3)):
            hp.Int(f"units_{i}", 16, 128, step=16)
        hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import pickle
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from tuner.data.spec import DatasetInfo
from tuner.errors import InputError
from tuner.paths import builtin_dir

SpaceFn = Callable[[Any, DatasetInfo], None]
_SAMPLINGS = ("linear", "log", "reverse_log")
MAX_GRID = 10_000  # points a grid search may have; larger grids are refused


PROBE_SECONDS = 20  # a user's space module is imported and run once within this time


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: Path
    fn: SpaceFn

    def describe(self) -> str:
        doc = (self.fn.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    def run(self, hp: Any, info: DatasetInfo) -> None:
        """Call the module's `space(hp, info)`: what it prints goes to stderr (stdout
        may carry `--json`), what it raises becomes one line naming the file and line."""
        try:
            with contextlib.redirect_stdout(sys.stderr):
                self.fn(hp, info)
        except InputError:
            raise
        except (Exception, SystemExit) as e:
            raise InputError(
                f"--space {self.path}: space(hp, data) {_raised(e, self.path)}; fix the file."
            ) from None


def _raised(e: BaseException, path: Path) -> str:
    """`raised ValueError: ... (line 7)` or `called sys.exit(0) (line 3)`: the deepest
    line of the user's file in the traceback."""
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
    where = f" (line {lines[-1]})" if lines else ""
    if isinstance(e, SystemExit):
        return f"called sys.exit({e.code!r}){where}"
    return f"raised {type(e).__name__}: {str(e)[:120]}{where}"


class _BaseHP:
    """Argument checks and conditional scopes shared by every `hp` flavour."""

    def __init__(self, source: str) -> None:
        self.values: dict[str, Any] = {}
        self._source = source
        self._inactive = 0
        self._definitions: dict[str, str] = {}
        self.defaults: dict[str, Any] = {}  # the `default=` values the space declares

    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Sequence[Any] | None = None,
    ) -> int | None:
        self._check_range("Int", name, min_value, max_value, step, sampling)
        self._check_integers(name, min_value=min_value, max_value=max_value, step=step)
        self._define(name, f"hp.Int({name!r}, {min_value}, {max_value}, step={step})")
        self._declare("Int", name, default, min_value <= (default or min_value) <= max_value)
        with self._scope(parent_name, parent_values):
            drawn: int | None = self._record(
                name, lambda: self._int(name, min_value, max_value, step, sampling)
            )
        return drawn

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Sequence[Any] | None = None,
    ) -> float | None:
        self._check_range("Float", name, min_value, max_value, step, sampling)
        self._define(name, f"hp.Float({name!r}, {min_value}, {max_value}, step={step}, {sampling})")
        self._declare("Float", name, default, min_value <= (default or min_value) <= max_value)
        with self._scope(parent_name, parent_values):
            drawn: float | None = self._record(
                name, lambda: self._float(name, min_value, max_value, step, sampling)
            )
        return drawn

    def Choice(
        self,
        name: str,
        values: Sequence[Any],
        ordered: bool | None = None,
        default: Any = None,
        parent_name: str | None = None,
        parent_values: Sequence[Any] | None = None,
    ) -> Any:
        self._check_name("Choice", name)
        if len(values) == 0:
            raise InputError(
                f"search space {self._source}: hp.Choice({name!r}) needs at least one value, "
                "but got values=[]; list the candidate values."
            )
        if len({type(v) for v in values}) > 1:
            raise InputError(
                f"search space {self._source}: hp.Choice({name!r}) values must share one type, "
                f"but got values={list(values)}."
            )
        self._define(name, f"hp.Choice({name!r}, {list(values)})")
        self._declare("Choice", name, default, default is None or default in values)
        with self._scope(parent_name, parent_values):
            return self._record(name, lambda: self._choice(name, list(values)))

    def Boolean(
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Sequence[Any] | None = None,
    ) -> bool | None:
        drawn: bool | None = self.Choice(
            name,
            [False, True],
            default=True if default else None,  # False is the first value anyway
            parent_name=parent_name,
            parent_values=parent_values,
        )
        return drawn

    def Fixed(
        self,
        name: str,
        value: Any,
        parent_name: str | None = None,
        parent_values: Sequence[Any] | None = None,
    ) -> Any:
        self._check_name("Fixed", name)
        with self._scope(parent_name, parent_values):
            return self._record(name, lambda: self._fixed(name, value))

    @contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Sequence[Any]) -> Iterator[None]:
        """Parameters defined inside are active only when `parent_name` is in `parent_values`."""
        with self._scope(parent_name, parent_values):
            yield

    def get(self, name: str) -> Any:
        if name not in self.values:
            raise InputError(
                f"search space {self._source}: hp.get({name!r}) names no parameter defined "
                f"so far; defined: {sorted(self.values)}."
            )
        return self.values[name]

    @contextmanager
    def _scope(
        self, parent_name: str | None, parent_values: Sequence[Any] | None
    ) -> Iterator[None]:
        active = parent_name is None or self.get(parent_name) in (parent_values or ())
        self._inactive += 0 if active else 1
        try:
            yield
        finally:
            self._inactive -= 0 if active else 1

    def _record(self, name: str, draw: Callable[[], Any]) -> Any:
        if self._inactive:
            return None
        if name not in self.values:
            self.values[name] = draw()
        return self.values[name]

    def _check_name(self, kind: str, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InputError(
                f"search space {self._source}: hp.{kind} needs a non-empty string name, "
                f"but got name={name!r}."
            )

    def _check_range(
        self,
        kind: str,
        name: str,
        low: float,
        high: float,
        step: float | None,
        sampling: str,
    ) -> None:
        self._check_name(kind, name)
        where = f"search space {self._source}: hp.{kind}({name!r})"
        for key, value in (("min_value", low), ("max_value", high), ("step", step)):
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise InputError(f"{where} needs finite numbers, but got {key}={value!r}.")
        if low > high:
            raise InputError(
                f"{where} needs min_value <= max_value, but got min_value={low}, "
                f"max_value={high}; swap them."
            )
        if step is not None and step <= 0:
            raise InputError(f"{where} needs step > 0, but got step={step}.")
        if sampling not in _SAMPLINGS:
            raise InputError(
                f"{where}: sampling must be one of {_SAMPLINGS}, but got sampling={sampling!r}."
            )
        if sampling != "linear" and low <= 0:
            raise InputError(f"{where}: log sampling needs min_value > 0, but got min_value={low}.")

    def _define(self, name: str, definition: str) -> None:
        """A name defined again must be defined the same way (else which one holds?)."""
        earlier = self._definitions.setdefault(name, definition)
        if earlier != definition:
            raise InputError(
                f"search space {self._source}: {name!r} is defined twice, as {earlier} and "
                f"as {definition}; give each parameter one definition (or two names)."
            )

    def _declare(self, kind: str, name: str, default: Any, fits: bool) -> None:
        if default is None:
            return
        if not fits:
            raise InputError(
                f"search space {self._source}: hp.{kind}({name!r}) has default={default!r}, "
                "outside its own range or values; give a default the parameter can take."
            )
        self.defaults[name] = default

    def _check_integers(self, name: str, **bounds: Any) -> None:
        for key, value in bounds.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(
                    f"search space {self._source}: hp.Int({name!r}) needs whole numbers, but "
                    f"got {key}={value!r}; use hp.Float for fractional values."
                )

    def _int(self, name: str, low: int, high: int, step: int | None, sampling: str) -> int:
        raise NotImplementedError

    def _float(
        self, name: str, low: float, high: float, step: float | None, sampling: str
    ) -> float:
        raise NotImplementedError

    def _choice(self, name: str, values: list[Any]) -> Any:
        raise NotImplementedError

    def _fixed(self, name: str, value: Any) -> Any:
        return value


class OptunaHP(_BaseHP):
    """`hp` whose values come from an Optuna trial."""

    def __init__(self, trial: optuna.Trial, source: str) -> None:
        super().__init__(source)
        self._trial = trial

    def _int(self, name: str, low: int, high: int, step: int | None, sampling: str) -> int:
        log = sampling != "linear"
        return self._trial.suggest_int(name, low, high, step=1 if log else step or 1, log=log)

    def _float(
        self, name: str, low: float, high: float, step: float | None, sampling: str
    ) -> float:
        log = sampling != "linear"
        return self._trial.suggest_float(name, low, high, step=None if log else step, log=log)

    def _choice(self, name: str, values: list[Any]) -> Any:
        return self._trial.suggest_categorical(name, values)

    def _fixed(self, name: str, value: Any) -> Any:
        # A one-value choice, so the trial's params (what export, refit and the
        # test scoring rebuild the model from) hold fixed values too.
        if value is None or isinstance(value, bool | int | float | str):
            return self._trial.suggest_categorical(name, [value])
        return value


class ProbeHP(_BaseHP):
    """`hp` that checks every definition and records each parameter's candidate values."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.candidates: dict[str, list[Any]] = {}

    def _int(self, name: str, low: int, high: int, step: int | None, sampling: str) -> int:
        self.candidates[name] = [low, high]
        return low

    def _float(
        self, name: str, low: float, high: float, step: float | None, sampling: str
    ) -> float:
        self.candidates[name] = [low, high]
        return low

    def _choice(self, name: str, values: list[Any]) -> Any:
        self.candidates[name] = values
        return values[0]

    def _fixed(self, name: str, value: Any) -> Any:
        self.candidates[name] = [value]
        return value


class _GridHP(_BaseHP):
    """`hp` that walks one path through the space's discrete decisions: the i-th
    decision met takes option `path[i]` (0 past the path's end); `widths` records
    how many options each decision had."""

    def __init__(self, source: str, path: Sequence[int]) -> None:
        super().__init__(source)
        self._path = path
        self.widths: list[int] = []

    def _pick(self, options: Sequence[Any]) -> Any:
        i = len(self.widths)
        self.widths.append(len(options))
        return options[self._path[i] if i < len(self._path) else 0]

    def _int(self, name: str, low: int, high: int, step: int | None, sampling: str) -> int:
        step = 1 if sampling != "linear" else step or 1  # as OptunaHP suggests it
        return int(self._pick(range(low, high + 1, step)))

    def _float(
        self, name: str, low: float, high: float, step: float | None, sampling: str
    ) -> float:
        where = f"--sampler grid: search space {self._source}: hp.Float({name!r})"
        if step is None:
            raise InputError(
                f"{where} has no step, so it has no grid points; give it a step (e.g. "
                f"step={(high - low) / 4:g}), make it an hp.Choice, or use --sampler tpe."
            )
        if sampling == "linear":
            count = math.floor((high - low) / step + 1e-9) + 1
            return float(self._pick([low + k * step for k in range(count)]))
        if step <= 1:
            raise InputError(
                f"{where}: a log-sampled grid multiplies by its step, which must exceed 1, "
                f"but got step={step}; pass e.g. step=10."
            )
        count = math.floor(math.log(high / low) / math.log(step) + 1e-9) + 1
        return float(self._pick([low * step**k for k in range(count)]))

    def _choice(self, name: str, values: list[Any]) -> Any:
        return self._pick(values)


class _DefaultHP(_BaseHP):
    """`hp` that takes each parameter's declared default, else its first value (the
    low end of a range), as KerasTuner's tuners do for their first trial."""

    def _int(self, name: str, low: int, high: int, step: int | None, sampling: str) -> int:
        return int(self.defaults.get(name, low))

    def _float(
        self, name: str, low: float, high: float, step: float | None, sampling: str
    ) -> float:
        return float(self.defaults.get(name, low))

    def _choice(self, name: str, values: list[Any]) -> Any:
        return self.defaults.get(name, values[0])


def default_configuration(space: SearchSpace, info: DatasetInfo) -> dict[str, Any] | None:
    """The configuration of the space's declared defaults, which a new study runs
    first; None for a space that declares no default."""
    hp = _DefaultHP(space.name)
    space.run(hp, info)
    return dict(hp.values) if hp.defaults else None


def grid_points(space: SearchSpace, info: DatasetInfo) -> list[dict[str, Any]]:
    """Every configuration of a discrete space, conditional parameters included only
    where they are active (a one-layer point has no `units_1`). Refuses a float
    range without a step and a grid of more than MAX_GRID points."""
    points: list[dict[str, Any]] = []
    path: list[int] = []
    while True:
        hp = _GridHP(space.name, path)
        space.run(hp, info)
        points.append(dict(hp.values))
        if len(points) > MAX_GRID:
            raise InputError(
                f"--sampler grid: search space {space.name} has more than {MAX_GRID} grid "
                "points; give fewer values or coarser steps, or use --sampler tpe."
            )
        # The next path: advance the deepest decision that has options left; the
        # decisions after it start again from their first option.
        widths = hp.widths
        path = path[: len(widths)] + [0] * (len(widths) - len(path))
        i = len(widths) - 1
        while i >= 0 and path[i] + 1 >= widths[i]:
            i -= 1
        if i < 0:
            return points
        path = [*path[:i], path[i] + 1]


class _ReplayHP(_BaseHP):
    """`hp` that answers with a given configuration where its values fit the
    space's definitions: `used` the values taken, `outside` the ones that do not
    fit (with the reason); a name not given takes the definition's first value."""

    def __init__(self, source: str, given: dict[str, Any]) -> None:
        super().__init__(source)
        self._given = given
        self.used: dict[str, Any] = {}
        self.outside: dict[str, str] = {}

    def _take(self, name: str, fits: bool, fallback: Any, rule: str) -> Any:
        if name not in self._given:
            return fallback
        if not fits:
            self.outside[name] = f"{self._given[name]!r} is outside {rule}"
            return fallback
        self.used[name] = self._given[name]
        return self._given[name]

    def _in_range(self, name: str, low: float, high: float) -> bool:
        value: Any = self._given.get(name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and low <= value <= high

    def _int(self, name: str, low: int, high: int, step: int | None, sampling: str) -> int:
        value: Any = self._given.get(name)
        fits = self._in_range(name, low, high) and float(value).is_integer()
        if fits and sampling == "linear" and step:
            fits = (int(value) - low) % step == 0
        return int(self._take(name, fits, low, f"[{low}, {high}]"))

    def _float(
        self, name: str, low: float, high: float, step: float | None, sampling: str
    ) -> float:
        return float(self._take(name, self._in_range(name, low, high), low, f"[{low}, {high}]"))

    def _choice(self, name: str, values: list[Any]) -> Any:
        return self._take(name, self._given.get(name) in values, values[0], f"{values}")

    def _fixed(self, name: str, value: Any) -> Any:
        return self._take(name, self._given.get(name) == value, value, f"the fixed {value!r}")


def replay(
    space: SearchSpace, info: DatasetInfo, given: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Run the space on a configuration from elsewhere (another study's trial):
    the values it keeps, those outside the space's ranges (name -> reason), and the
    names the space never asks for."""
    hp = _ReplayHP(space.name, given)
    space.run(hp, info)
    unknown = sorted(set(given) - set(hp.values))
    return hp.used, hp.outside, unknown


def load_space(name_or_path: str, *, isolate_with: DatasetInfo | None = None) -> SearchSpace:
    """Find a search-space module by built-in name or `.py` path and load its `space`;
    with `isolate_with`, a user's module is first run once in a child process
    (`probe_in_child`) on that dataset."""
    path = find_space(name_or_path)
    if isolate_with is not None and path.parent != builtin_dir("search_spaces"):
        probe_in_child(path, isolate_with)
    return _load(path)


def find_space(name_or_path: str) -> Path:
    """The module of a built-in space name or a `.py` path."""
    path = Path(name_or_path)
    if path.suffix == ".py" or "/" in name_or_path:
        if not path.is_file():
            raise InputError(f"--space: file {name_or_path!r} does not exist; check the path.")
    else:
        path = builtin_dir("search_spaces") / f"{name_or_path}.py"
        if not path.is_file():
            raise InputError(
                f"--space: unknown search space {name_or_path!r}; built-in spaces are "
                f"{sorted(builtin_spaces())} (see `tuner spaces`), or pass a .py path."
            )
    return path.resolve()


def _load(path: Path) -> SearchSpace:
    module_spec = importlib.util.spec_from_file_location(f"tuner_space_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"--space: cannot import {path}; it must be a Python module.")
    module = importlib.util.module_from_spec(module_spec)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout may carry --json
            module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise InputError(
            f"--space {path}: line {e.lineno}: {e.msg} (the module must be valid Python); "
            "fix the file."
        ) from None
    except (Exception, SystemExit) as e:  # the user's module raised while it was imported
        raise InputError(
            f"--space {path}: importing it {_raised(e, path)}; fix the file."
        ) from None
    fn = getattr(module, "space", None)
    if not callable(fn):
        raise InputError(
            f"--space {path}: the module must define a function space(hp, data); none found."
        )
    return SearchSpace(name=path.stem, path=path, fn=fn)


def default_space(task: str) -> str:
    """The built-in search space used for a task when `--space` is not given: the
    space named after the task."""
    return task


def builtin_spaces() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_dir("search_spaces").glob("*.py"))}


def probe_space(space: SearchSpace, info: DatasetInfo) -> dict[str, list[Any]]:
    """Run the space once with checking `hp`; also check window lengths against the data."""
    hp = ProbeHP(space.name)
    space.run(hp, info)
    if not info.kind.windowed:  # sequences keep their own length
        return hp.candidates
    if "seq_len" not in hp.candidates:
        raise InputError(
            f"search space {space.name}: must define 'seq_len' (the input window length), "
            "e.g. hp.Choice('seq_len', data.seq_len_choices())."
        )
    longest = max(hp.candidates["seq_len"])
    if not isinstance(longest, int) or isinstance(longest, bool) or longest < 1:
        raise InputError(
            f"search space {space.name}: seq_len values must be positive integers, "
            f"but got {hp.candidates['seq_len']}."
        )
    if longest > info.max_seq_len:
        raise InputError(
            f"search space {space.name}: seq_len={longest} cannot be supplied by the data: "
            f"the training split has {info.n_train} rows (the shortest split bounds a text "
            f"model; a forecast also needs the horizon, {info.horizon}), so seq_len must be at "
            f"most {info.max_seq_len}; lower the range."
        )
    return hp.candidates


_PROBED = "tuner-space-probe:"  # the child's answer line on stdout


def probe_in_child(path: Path, info: DatasetInfo, *, seconds: float = PROBE_SECONDS) -> None:
    """Import a user's space module and run `space(hp, data)` once in a child process
    within `seconds`, before this process imports it: an endless loop, an exit or a
    crash of the interpreter becomes one line (InputError) instead of a hang or a
    silent exit of the tuner."""
    where = f"--space {path}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from tuner.space import _child; _child()"],
            input=pickle.dumps((str(path), info)),
            capture_output=True,
            timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{where}: importing it and running space(hp, data) once took more than "
            f"{seconds:g} s (an endless loop?); a space only declares parameters: move slow "
            "work out of it."
        ) from None
    for line in done.stdout.decode(errors="replace").splitlines()[::-1]:
        if line.startswith(_PROBED):
            message = json.loads(line[len(_PROBED) :])
            if message:
                raise InputError(message)
            return
    raise InputError(
        f"{where}: importing it and running space(hp, data) ended the Python process "
        f"(exit code {done.returncode}) before it finished; a space only declares "
        "parameters: remove what ends the process."
    )


def _child() -> None:
    """The child of `probe_in_child`: its answer (an error message or null) is the
    last line on stdout; what the module prints goes to stderr."""
    path, info = pickle.loads(sys.stdin.buffer.read())
    answer = None
    try:
        probe_space(_load(Path(path)), info)
    except InputError as e:
        answer = str(e)
    sys.stdout.write(_PROBED + json.dumps(answer) + "\n")
    sys.stdout.flush()
