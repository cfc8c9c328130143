"""What a study minimises or bounds beside its validation objective: the measures'
names, `--constraint`'s bounds and the checks of `--objectives`, `--constraint` and
`--pick` (declared as options in tuner/config.py; measured by tuner/model/measures.py)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tuner.errors import InputError, Opt
from tuner.search_engines import Engine

# What a study can minimise beside its validation objective, or bound (--objectives,
# --constraint, --pick): measured on each trial's model (tuner.model.measures).
MEASURES = ("latency_ms", "batch_latency_ms", "params", "size_kb")
VALIDATION = "val_loss"  # --objectives: the study's validation objective, always first
PICK_WITHIN = 0.01  # --pick: trials within 1 % of the best validation objective

OBJECTIVES_HELP = (
    f"minimise these together, comma-separated, {VALIDATION} first: {VALIDATION} (the "
    "validation objective), latency_ms (median of batch-1 predictions of the trained model "
    "on the worker's device), batch_latency_ms (the same for 32 windows), params, size_kb "
    "(the saved model); the study keeps the Pareto "
    f"front (Optuna's multi-objective TPE) and prunes nothing (default: {VALIDATION} alone)"
)
CONSTRAINT_HELP = (
    f"bounds a champion must meet, comma-separated NAME<=NUMBER over {', '.join(MEASURES)} "
    "(e.g. latency_ms<=2,params<=50000): trials over a bound are kept and shown, never "
    "champion, and the sampler steers away from them"
)
PICK_HELP = (
    f"the champion: among feasible trials within {PICK_WITHIN * 100:g} percent of the best "
    f"validation objective, the lowest in {' | '.join(MEASURES)} (default: the best "
    "validation objective)"
)


@dataclass(frozen=True)
class Bound:
    """One `--constraint`: `name` (a measure) at most `limit`."""

    name: str
    limit: float

    def excess(self, measured: dict[str, float]) -> float:
        """How far the measured value is over the limit (at most 0: met)."""
        return measured[self.name] - self.limit


_BOUND = re.compile(r"\s*([A-Za-z_]+)\s*<=\s*(\S+)\s*")


def parse_bound(text: str, *, option: str = "constraint") -> Bound:
    """A `NAME<=NUMBER` constraint, or one line saying what is wrong with it."""
    found = _BOUND.fullmatch(text)
    limit = None
    if found is not None:
        try:
            limit = float(found[2])
        except ValueError:
            limit = None
    if found is None or limit is None or not math.isfinite(limit):
        raise InputError(
            f"{Opt(option, text)}: expected NAME<=NUMBER with NAME one of "
            f"{', '.join(MEASURES)}, e.g. {Opt(option, 'latency_ms<=2')}.",
            option=option,
        )
    if found[1] not in MEASURES:
        raise InputError(
            f"{Opt(option, text)}: {found[1]!r} is not measured; bound one of "
            f"{', '.join(MEASURES)}, e.g. {Opt(option, 'params<=50000')}.",
            option=option,
        )
    return Bound(found[1], limit)


def check_constraints(name: str, value: tuple[str, ...]) -> None:
    for text in value:
        parse_bound(text, option=name)


def check_objectives(name: str, value: tuple[str, ...]) -> None:
    allowed = (VALIDATION, *MEASURES)
    unknown = [v for v in value if v not in allowed]
    if unknown or not value or value[0] != VALIDATION or len(set(value)) != len(value):
        why = (
            f"{unknown[0]!r} is not one of {', '.join(allowed)}"
            if unknown
            else (f"the list must start with {VALIDATION} and name each objective once")
        )
        raise InputError(
            f"{Opt(name, ','.join(value))}: {why}; pass e.g. "
            f"{Opt(name, VALIDATION + ',latency_ms')}.",
            option=name,
        )


def check_measures(config: Any, engine: Engine) -> None:
    """--objectives, --constraint and --pick against the engine, --fuse, --ensemble and the
    sampler (called by TuneConfig's own checks)."""
    asked = " ".join(
        str(Opt(name, ",".join(v) if isinstance(v, tuple) else v))
        for name in ("objectives", "constraint", "pick")
        if (v := getattr(config, name)) is not None
    )
    first = next(
        (n for n in ("objectives", "constraint", "pick") if getattr(config, n) is not None), ""
    )
    if first and not engine.measures:
        raise InputError(
            f"{asked} works with the optuna engine, but got {Opt('engine', engine.name)}; "
            f"leave out {Opt(first)}, or use {Opt('engine', 'optuna')}.",
            option=first,
        )
    if config.multi_objective and config.fused:
        raise InputError(
            f"{Opt('fuse', config.fuse)} trains groups whose trials Optuna scores on one "
            f"objective, but got {asked}; leave out {Opt('fuse')} or {Opt('objectives')}.",
            option="fuse",
        )
    if first and config.ensemble:
        raise InputError(
            f"{Opt('ensemble', config.ensemble)} averages K models into one of K times the "
            f"latency and size, but got {asked}; leave out {Opt('ensemble')}.",
            option="ensemble",
        )
    if config.multi_objective and config.sampler == "cmaes":
        raise InputError(
            f"{Opt('sampler', 'cmaes')} minimises one objective, but got {asked}; use "
            f"{Opt('sampler', 'tpe')} (multi-objective TPE), random or gp.",
            option="sampler",
        )
