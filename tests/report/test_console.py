"""The console's trial progress line."""

from __future__ import annotations


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
