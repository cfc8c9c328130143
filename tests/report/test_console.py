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
