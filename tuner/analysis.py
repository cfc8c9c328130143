"""Figures and tables of a study, for notebooks: everything the shipped notebook
(`notebooks/analysis.ipynb`) shows comes from here.

Each function takes a study (and the MLflow tracking URI where it needs the
runs or the logged model) and returns a matplotlib figure or a pandas table:

```python
from tuner import analysis, open_study

result = open_study("co2")
analysis.optimization_history(result.study)
analysis.best_model_figure(result.study, result.tracking_uri)
```
"""

from __future__ import annotations

from tuner.report.model_figures import best_model_figure, model_figure
from tuner.report.study_figures import (
    best_against_baselines,
    compare_studies,
    contour_of_top_two,
    front_figure,
    learning_curves,
    optimization_history,
    parallel_coordinates,
    param_importances,
    top_two_params,
    val_loss_histories,
)

__all__ = [
    "best_against_baselines",
    "best_model_figure",
    "compare_studies",
    "contour_of_top_two",
    "front_figure",
    "learning_curves",
    "model_figure",
    "optimization_history",
    "parallel_coordinates",
    "param_importances",
    "top_two_params",
    "val_loss_histories",
]
