"""Console output: progress over trials on stderr, tables of results.

In a terminal a progress bar shows the best value so far; elsewhere (CI, logs)
each finished trial is one plain line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner.data.spec import Dataset, DatasetInfo
from tuner.errors import Opt
from tuner.model.budget import (
    MAX_PASSES,
    PORTFOLIO_SHARE_OF_TIMEOUT,
    ROUND_STEPS,
    ROUND_TARGETS,
    TRIAL_SHARE_OF_TIMEOUT,
    passes_per_round,
)
from tuner.study import records
from tuner.study.summary import champion, objective_of, state_name

err = Console(stderr=True)
out = Console()


class TrialProgress:
    """Optuna callback advancing a bar over trials and one over the current trial's
    epochs (TTY), or printing a line per trial (logs, CI)."""

    def __init__(self, total: int, done: int, *, console: Console = err) -> None:
        self._total = total
        # Live bars on a terminal only: Jupyter sets FORCE_COLOR=1 in its kernels (and
        # so in their worker processes), where redrawn bars filled a cell with escapes.
        tty = getattr(console.file, "isatty", lambda: False)()
        self._live = console.is_terminal and (tty or not os.environ.get("FORCE_COLOR"))
        self._progress = Progress(
            TextColumn("[bold]{task.fields[label]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self._live,
        )
        self._task = self._progress.add_task("", total=total, completed=done, label="trials")
        self._epochs = self._progress.add_task("", total=None, visible=False, label="epochs")

    def epoch(self, trial: int, epoch: int, max_epochs: int, logs: dict[str, float]) -> None:
        """Advance the epoch bar of the running trial (TTY only)."""
        loss = logs.get("val_loss", float("nan"))
        self._progress.update(
            self._epochs,
            completed=epoch + 1,
            total=max_epochs,
            visible=True,
            label=f"trial {trial}",
            description=f"val_loss {loss:.5f}",
        )

    def __enter__(self) -> TrialProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        done = len(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
        best = _best_text(study)
        self._progress.update(self._task, completed=done, description=best)
        if not self._live:
            err.print(_trial_line(trial, done, self._total, best), highlight=False, soft_wrap=True)


def _best_text(study: optuna.Study) -> str:
    best = champion(study)
    return f"best {objective_of(best):.5f} (#{best.number})" if best else "best -"


def _trial_line(trial: FrozenTrial, done: int, total: int, best: str) -> str:
    value = f"{objective_of(trial):.5f}" if trial.state == TrialState.COMPLETE else "-"
    secs = trial.duration.total_seconds() if trial.duration else 0.0
    epochs = trial.user_attrs.get(records.EPOCHS_RUN, "?")
    why = trial.user_attrs.get(records.FAIL_REASON) or trial.user_attrs.get(records.STOP_REASON, "")
    return (
        f"[{done}/{total}] trial {trial.number} {state_name(trial)} value={value} "
        f"epochs={epochs} {secs:.1f}s {why} | {best}"
    )


def trials_table(
    rows: list[dict[str, Any]],
    *,
    title: str,
    metric: str = "value",
    best: int | None = None,
    limit: int | None = None,
    front: Collection[int] = (),
) -> Table:
    """Trials with their objective (`metric`, e.g. val_mse): a pruned trial shows the
    last value it reported, marked; the best trial is starred. One line a trial: its
    parameters that differ between the trials shown (cut at the terminal's width);
    those alike in all of them are said once, under the table."""
    shown = rows[:limit]
    alike = _alike(shown)
    measures = sorted({k for row in shown for k in (row.get("measured") or {})})
    caption = f"* best trial; {metric} (last): reported before pruning"
    if front:
        caption = f"* champion; + on the Pareto front; {metric} (last): reported before pruning"
    if any(not row.get("feasible", True) for row in shown):
        caption += "; over: over a --constraint bound (never champion)"
    if alike:
        caption += "; in every trial: " + ", ".join(f"{k}={_short(v)}" for k, v in alike.items())
    table = Table(title=title, caption=caption)
    cells = []
    for row in shown:
        value = f"{row['value']:.5f}" if row["value"] is not None else "-"
        if row["state"] == "pruned" and row["value"] is not None:
            value += " (last)"
        secs = f"{row['duration_s']:.1f}" if row["duration_s"] is not None else "-"
        number = str(row["number"]) + ("+" if row["number"] in front else "")
        number += "*" if row["number"] == best else ""
        state = row["state"] + ("" if row.get("feasible", True) else " over")
        measured = [_short((row.get("measured") or {}).get(m, "-")) for m in measures]
        params = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items() if k not in alike)
        cells.append((number, state, value, *measured, str(row["epochs"] or "-"), secs, params))
    heads = (("#", "right"), ("state", "left"), (metric, "right"),
             *((m, "right") for m in measures), ("epochs", "right"),
             ("seconds", "right"))  # fmt: skip
    widths = [max([len(head), *(len(c[i]) for c in cells)]) for i, (head, _) in enumerate(heads)]
    for (head, justify), width in zip(heads, widths, strict=True):
        table.add_column(head, justify=justify, min_width=width)  # type: ignore[arg-type]
    # What the terminal leaves (each column takes 3 more: padding and a border).
    room = out.width - sum(widths) - 3 * len(heads) - 4
    table.add_column("params", no_wrap=True, overflow="ellipsis", max_width=max(20, room))
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def _alike(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters every one of several trials with parameters has, at one value."""
    drawn = [row["params"] for row in rows if row["params"]]
    if len(drawn) < 2:
        return {}
    return {k: v for k, v in drawn[0].items() if all(k in p and p[k] == v for p in drawn[1:])}


def results_table(summary: dict[str, Any]) -> Table:
    """Best trial against the baselines on validation and test, in every metric of the task."""
    table = Table(title=f"study {summary['study']}: best trial against the baselines")
    rows = [
        ("best trial", "val", summary["best_val"]),
        ("best trial", "test", summary["best_test"]),
    ]
    for key, metrics in sorted(summary["baselines"].items(), key=lambda kv: kv[0][::-1]):
        name, split = key.rsplit("_", 1)
        rows.append((name.replace("_", " "), split, metrics))
    names = list(summary["best_val"] or next(iter(summary["baselines"].values()), {}))
    for col in ("model", "split", *names):
        table.add_column(col)
    for name, split, m in rows:
        if m:
            table.add_row(name, split, *(f"{m[k]:.5f}" if k in m else "-" for k in names))
    captions = []
    spread = summary.get("fold_spread")
    if spread:
        captions.append(
            f"the best trial's objective over its {spread['folds']} folds: "
            f"{spread['low']:.4g}-{spread['high']:.4g} (std {spread['std']:.2g}); "
            "the test score may differ from validation by about as much"
        )
    measured = summary.get("fuse_measured")
    if measured:
        speeds = ", ".join(
            f"{float(v):,.0f} at {k}" for k, v in measured["member_steps_per_s"].items()
        )
        captions.append(
            f"{Opt('fuse', 'auto')} kept groups of {measured['size']} (member-steps/s {speeds})"
        )
    fused = summary.get("fused")
    if fused:
        captions.append(
            f"{fused['trials']} trials trained fused, in {fused['groups']} "
            f"group{'s' if fused['groups'] != 1 else ''} ({Opt('fuse')})"
        )
    if captions:
        table.caption = "; ".join(captions)
    return table


def datasets_lines(datasets: Sequence[Dataset]) -> list[str]:
    """Built-in datasets, two lines each: name, task, split sizes and shape; then
    the description and source (plain text, readable at any width)."""
    lines = []
    for row in map(dataset_row, datasets):
        sizes = "/".join(str(n) for n in row["split_sizes"])
        lines.append(f"{row['name']:<20} {row['task']:<15} {sizes:<20} {row['shape']}")
        lines.append(f"    {row['description']}; source: {row['source']}")
        lines.append(f"    windows: {row['windows']}; selection: {row['selection']}")
    return lines


def dataset_row(data: Dataset) -> dict[str, Any]:
    """One dataset's listing: name, task, shape, split sizes, the default spaces'
    window rule, how trials are selected (validation split or K-fold CV),
    description and source."""
    info = data.info
    selection = f"{info.cv}-fold cross-validation" if info.cv else "validation split"
    return {
        "name": data.spec.name,
        "task": data.spec.task,
        "shape": info.kind.shape(info),
        "split_sizes": data.fingerprint["split_sizes"],
        "windows": info.window_rule,
        "cv": info.cv,
        "selection": f"{selection} (test split never used)",
        "budget": budget_rule(info),
        "description": data.spec.description,
        "source": data.spec.source,
    }


def budget_rule(info: DatasetInfo) -> str:
    """The training budget a trial gets on this data, in words (tuner.model.train)."""
    window = min(info.window_choices(), default=info.max_seq_len)
    windows = info.train_windows(window)
    low, high = (
        passes_per_round(windows, batch, targets=info.targets_per_window(window))
        for batch in (16, 256)
    )
    passes = str(low) if low == high else f"{low}-{high}"
    return (
        f"{Opt('max_epochs')} rounds of {passes} pass{'es' if high > 1 else ''} (batches of "
        f"16-256) over {windows:,} training windows (a round: at least {ROUND_TARGETS:,} targets "
        f"and {ROUND_STEPS} steps, at most {MAX_PASSES} passes); patience and pruning in rounds; "
        f"a trial of a timed study trains at most {TRIAL_SHARE_OF_TIMEOUT:.0%} of {Opt('timeout')} "
        f"(a portfolio trial {PORTFOLIO_SHARE_OF_TIMEOUT:.0%}) and never past its end"
    )


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def quiet_libraries() -> None:
    """Our own lines report trials; Optuna's and MLflow's info logs would repeat them."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # It logs each database error with its SQL and parameters, then raises it: the
    # error is reported once, in one line (a full disk, a locked file).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
