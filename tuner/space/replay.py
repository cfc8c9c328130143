"""A space's own decisions replayed: its declared defaults, every point of its
grid (`--sampler grid`), and another study's values kept where this space can
take them (warm starts, the portfolio)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuner.data.spec import DatasetInfo
from tuner.errors import InputError, Opt
from tuner.space.hp import SearchSpace, _BaseHP

MAX_GRID = 10_000  # points a grid search may have; larger grids are refused


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
        where = f"{Opt('sampler', 'grid')}: search space {self._source}: hp.Float({name!r})"
        if step is None:
            raise InputError(
                f"{where} has no step, so it has no grid points; give it a step (e.g. "
                f"step={(high - low) / 4:g}), make it an hp.Choice, or use "
                f"{Opt('sampler', 'tpe')}."
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
                f"{Opt('sampler', 'grid')}: search space {space.name} has more than {MAX_GRID} "
                f"grid points; give fewer values or coarser steps, or use {Opt('sampler', 'tpe')}."
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
