"""The search engines a study can run under: one registered entry each, with what
it does itself and which of the tuner's features it takes as data. Code outside
asks the entry (`TuneConfig.search_engine`); it does not branch on the name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    """A search engine: what it does itself and which of the tuner's features it
    takes (the options it refuses are refused before anything runs)."""

    name: str
    summary: str  # for --help
    own_loop: bool  # runs its own search in one process (else the tuner's trial loop)
    parallel: bool  # more than one worker process on one study
    warm_start: bool  # --warm-start and --init-from
    grid: bool  # --sampler grid
    cross_validates: bool  # trials trained on K folds
    keeps_models: bool  # trials keep their models (a top-K ensemble can be built)
    fuse: bool  # --fuse K: groups of trials trained as one program
    measures: bool  # --objectives, --constraint, --pick: trials measured, a Pareto front


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine(
            "optuna",
            "the tuner's trial loop under an Optuna sampler and pruner",
            own_loop=False,
            parallel=True,
            warm_start=True,
            grid=True,
            cross_validates=True,
            keeps_models=True,
            fuse=True,
            measures=True,
        ),
        Engine(
            "keras-tuner",
            "KerasTuner searches the same space",
            own_loop=True,
            parallel=False,
            warm_start=False,
            grid=False,
            cross_validates=False,
            keeps_models=False,
            fuse=False,
            measures=False,
        ),
    )
}
