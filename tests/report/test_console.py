"""The console's trial progress line."""

from __future__ import annotations

import pytest


def test_progress_shows_the_running_trials_epochs_only_in_a_terminal() -> None:
    import io

    from rich.console import Console

    from tuner.report.console import TrialProgress

    screen = io.StringIO()
    with TrialProgress(5, 1, console=Console(file=screen, force_terminal=True, width=120)) as bar:
        bar.epoch(3, 1, 10, {"val_loss": 0.25})
    text = screen.getvalue()
    assert "trial 3" in text and "2/10" in text and "val_loss 0.25000" in text
    log = io.StringIO()
    with TrialProgress(5, 1, console=Console(file=log, force_terminal=False)) as bar:
        bar.epoch(3, 1, 10, {"val_loss": 0.25})
    assert log.getvalue() == ""  # logs get one line per finished trial, no epoch bars


def test_forced_colour_without_a_terminal_gets_lines_not_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Jupyter kernel sets FORCE_COLOR=1 (inherited by the workers): its output is a
    pipe into the cell, where a redrawn bar would write escapes for every refresh."""
    import io

    from rich.console import Console

    from tuner.report.console import TrialProgress

    monkeypatch.setenv("FORCE_COLOR", "1")
    cell = io.StringIO()
    console = Console(file=cell, width=120)
    assert console.is_terminal  # what rich concludes from FORCE_COLOR
    with TrialProgress(5, 1, console=console) as bar:
        bar.epoch(3, 1, 10, {"val_loss": 0.25})
    assert cell.getvalue() == ""


def test_status_table_gives_each_trial_one_line_at_80_columns() -> None:
    from rich.console import Console

    from tuner.report.console import trials_table

    rows = [
        {
            "number": i, "state": "complete", "value": 0.1 + i / 100, "epochs": 20,
            "duration_s": 12.5,
            "params": {"cell": "lstm", "units_0": 16 * (1 + i % 4), "dropout": 0.05 * (i % 3),
                       "learning_rate": 1e-3, "optimizer": "adam", "batch_size": 16},
        }
        for i in range(25)
    ]  # fmt: skip
    console = Console(width=80, record=True)
    console.print(trials_table(rows, title="study x: 25 trials", metric="val_mse", best=3))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 25  # one line a trial (368 lines at 80 columns before)
    assert body[3].startswith("│ 3* │") and "units_0=32, dropout=0.1" in body[5]
    caption = " ".join(" ".join(lines[-3:]).split())
    assert "in every trial: cell=lstm, learning_rate=0.001, optimizer=adam" in caption


def test_the_results_table_says_how_far_folds_stray() -> None:
    import io

    from rich.console import Console

    from tuner.report.console import results_table

    summary = {
        "study": "s",
        "best_val": {"accuracy": 0.95},
        "best_test": {"accuracy": 0.9},
        "baselines": {"majority_val": {"accuracy": 0.5}},
        "fold_spread": {"low": 0.81, "high": 0.99, "std": 0.061, "folds": 5},
    }
    screen = io.StringIO()
    Console(file=screen, width=200).print(results_table(summary))
    text = " ".join(screen.getvalue().split())
    assert "objective over its 5 folds: 0.81-0.99 (std 0.061); the test score may differ" in text
    screen = io.StringIO()
    Console(file=screen, width=200).print(results_table({**summary, "fold_spread": None}))
    assert "folds" not in screen.getvalue()
