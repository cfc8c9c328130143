"""The `hp` objects a search space calls: `OptunaHP` (a trial's suggestions) and
`ProbeHP` (the probe that checks every definition before any training), on
their common base; `SearchSpace` is a loaded space module."""

from __future__ import annotations

import contextlib
import math
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from tuner.data.spec import DatasetInfo
from tuner.errors import InputError, Opt

SpaceFn = Callable[[Any, DatasetInfo], None]
_SAMPLINGS = ("linear", "log", "reverse_log")


@dataclass(frozen=True)
class SearchSpace:
    """A loaded space module: its name, file and `space(hp, data)` function."""

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
                f"{Opt('space', self.path)}: space(hp, data) {_raised(e, self.path)}; fix the file."
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
