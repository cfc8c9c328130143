"""Warm starts: the best configurations of an earlier study enqueued as a new
study's first trials (`--warm-start STUDY` or `--warm-start STORAGE_URL#STUDY`).

Each configuration is replayed through the new space: parameters the space does
not have are dropped, and a configuration with a value outside the space's
ranges is skipped, each with one line saying so. The enqueued trials carry
`warm_start_from` (`STUDY#TRIAL`), also as a tag of their MLflow runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from tuner.data.spec import DatasetInfo
from tuner.errors import InputError, Opt
from tuner.space import SearchSpace, replay
from tuner.stores import mask_secrets
from tuner.study import records
from tuner.study.storage import open_storage
from tuner.study.summary import top_trials


@dataclass(frozen=True)
class WarmStart:
    """The configurations to enqueue, each with the trial it comes from, and the
    lines that say what was dropped or skipped."""

    configurations: list[tuple[dict[str, Any], str]]
    lines: list[str]

    def enqueue(self, study: optuna.Study) -> None:
        """Enqueue them (a configuration already in the study is not enqueued again)."""
        for params, origin in self.configurations:
            study.enqueue_trial(
                params, user_attrs={records.WARM_START_FROM: origin}, skip_if_exists=True
            )


def warm_start(
    source: str,
    *,
    study: str,
    storage_url: str,
    space: SearchSpace,
    info: DatasetInfo,
    count: int,
) -> WarmStart:
    """The `count` best complete trials of `source`, replayed through `space`
    (read before the new study is opened, so a bad source records nothing)."""
    url, name = source.rsplit("#", 1) if "#" in source else (storage_url, source)
    if url == storage_url and name == study:
        raise InputError(
            f"{Opt('warm_start', name)}: a study cannot warm-start from itself; name an earlier "
            f"study, or leave out {Opt('warm_start')} to resume this one."
        )
    try:
        earlier = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise InputError(
            f"{Opt('warm_start', mask_secrets(source))}: no study named {name!r} in "
            f"{mask_secrets(url)}; check the name (`tuner status --study NAME`), or give "
            "STORAGE_URL#STUDY for another storage."
        ) from None
    best = top_trials(earlier, count)
    if not best:
        raise InputError(
            f"{Opt('warm_start', mask_secrets(source))}: study {name!r} has no complete trial to "
            "start from; let it finish a trial first."
        )
    out = WarmStart(configurations=[], lines=[])
    for trial in best:
        origin = f"{name}#{trial.number}"
        kept, outside, unknown = replay(space, info, dict(trial.params))
        if outside:
            reasons = "; ".join(f"{k}={v}" for k, v in outside.items())
            out.lines.append(f"warm start: skipped {origin}, outside space {space.name}: {reasons}")
            continue
        if unknown:
            out.lines.append(
                f"warm start: {origin}: dropped {', '.join(unknown)} (not in space {space.name})"
            )
        out.configurations.append((kept, origin))
    out.lines.append(
        f"warm start: {len(out.configurations)} configuration(s) of study {name} enqueued first"
    )
    return out


def origin_tags(trial: optuna.Trial) -> dict[str, str]:
    """The MLflow tags of a trial enqueued from elsewhere: the trial a warm start took
    it from, or its portfolio entry (`portfolio: lstm-fcn-2017`)."""
    keys = (records.WARM_START_FROM, records.PORTFOLIO)
    return {k: str(trial.user_attrs[k]) for k in keys if trial.user_attrs.get(k)}
