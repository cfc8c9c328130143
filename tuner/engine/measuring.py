"""What a trial is judged on beside its validation objective: its measures under
`--objectives`, `--constraint` and `--pick` (taken on its model, recorded on the
trial and its run, turned into what Optuna is told), and the champion's test score."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import optuna
from optuna.trial import TrialState

from tuner.config import TuneConfig
from tuner.data.spec import Dataset, DatasetInfo
from tuner.data.windows import WindowCache
from tuner.model import params as hparams
from tuner.model.build import build_model
from tuner.model.measures import measure
from tuner.model.portable import trained_part
from tuner.model.train import evaluate
from tuner.report.model_figures import model_figure
from tuner.study import records
from tuner.study.summary import (
    Standing,
    champion,
    completed,
    record_test_metrics,
    test_metrics,
)
from tuner.tracking.models import load_logged_model
from tuner.tracking.tracker import Tracker


class TrialMeasures:
    """The study's measures (none for a study that names none: nothing is taken)."""

    def __init__(self, config: TuneConfig, info: DatasetInfo, tracker: Tracker) -> None:
        self._config = config
        self._info = info
        self._tracker = tracker

    def take(
        self,
        trial: optuna.Trial,
        run_id: str,
        params: Any,
        model: keras.Model | None,
        x: np.ndarray,
        value: float,
    ) -> Standing:
        """Measure the trained model (under cross-validation, the configuration built
        afresh: no measure depends on the weights), record the measures and how far
        each bound is exceeded; the trial's standing for the champion rule."""
        names = self._config.measured
        if not names:
            return Standing(trial.number, value, {})
        measured = measure(model or build_model(params, self._info), x, names)
        trial.set_user_attr(records.MEASURED, measured)
        feasible = True
        if self._config.bounds:
            excess = [b.excess(measured) for b in self._config.bounds]
            trial.set_user_attr(records.CONSTRAINT_EXCESS, excess)
            feasible = all(e <= 0 for e in excess)
            self._tracker.set_tags(run_id, {"feasible": feasible})
        self._tracker.log_metrics(run_id, measured)
        return Standing(trial.number, value, measured, feasible)

    def told(self, standing: Standing) -> float | tuple[float, ...]:
        """What Optuna is told: the value, or under `--objectives` one per objective."""
        if not self._config.multi_objective:
            return standing.objective
        names = (self._config.objectives or ())[1:]
        return (standing.objective, *(standing.measured[name] for name in names))


def finalize(
    study: optuna.Study, tracker: Tracker, config: TuneConfig, data: Dataset, cache: WindowCache
) -> None:
    """Score the study's best trial, and it alone, on the test split: its test
    metrics (stored with the study and in the trial's MLflow run) and the best
    model's figure. Runs when a worker ends with no trial left running; once
    per best trial."""
    if not completed(study) or study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        return
    best = champion(study)
    if best is None or records.MODEL_URI not in best.user_attrs:
        return
    # Workers that finished together may have moved the alias in any order.
    # Under --pick the champion may validate worse than a version registered
    # earlier: the alias follows the study's champion.
    tracker.promote_run(
        config.study_name,
        best.user_attrs.get(records.MLFLOW_RUN_ID, ""),
        force=config.pick is not None,
    )
    if test_metrics(study, best) is not None:
        return
    logged = load_logged_model(best.user_attrs[records.MODEL_URI], tracker.tracking_uri)
    model = trained_part(logged)  # evaluated on the standardised windows
    info = data.info
    chosen = hparams.TrialParams(best.params, max_seq_len=info.max_seq_len)
    windows = cache.get(chosen.window)
    # batch_size: the trial's, whose predict step is compiled
    test = evaluate(model, windows["test"], data, batch_size=chosen.batch_size)
    record_test_metrics(study, best, test)
    run_id = best.user_attrs.get(records.MLFLOW_RUN_ID)
    if run_id:
        tracker.log_metrics(run_id, {f"test_{k}": v for k, v in test.items()})
    # The parent process never loads Keras: the best model is drawn here.
    figure = model_figure(model, data, windows["test"], best.params, study.study_name)
    tracker.log_figure(tracker.parent_id, figure, "plots/best_model.png")
