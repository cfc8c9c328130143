"""B1 search efficiency: the default (TPE + Hyperband pruning) against Optuna
random search without pruning, KerasTuner Hyperband and KerasTuner
BayesianOptimization, on one space (bench/spaces/search.py, co2), with the same
budget of training epochs and several seeds.

Every method runs through `tuner tune` (`--engine keras-tuner` for KerasTuner)
with `--epoch-budget`; a trial that would end past the budget does not count.
Best-so-far is the lowest validation MSE among completed trials after each
trial's epochs; the test MSE is that of the model the validation chose.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common import SPACES, environment, load_study, median, study_trials, tune

from tuner.study.summary import test_metrics

METHODS = {
    "default": (
        "Optuna TPE + Hyperband pruning (default)", "--sampler", "tpe", "--pruner", "hyperband"
    ),
    "random": ("Optuna random search, no pruning", "--sampler", "random", "--pruner", "none"),
    "kt_hyperband": ("KerasTuner Hyperband", "--engine", "keras-tuner", "--kt-tuner", "hyperband"),
    "kt_bayesian": (
        "KerasTuner BayesianOptimization", "--engine", "keras-tuner", "--kt-tuner", "bayesian"
    ),
}  # fmt: skip
FULL = {"seeds": (1, 2, 3), "budget": 120, "max_epochs": 12, "patience": 3}
QUICK = {"seeds": (1,), "budget": 16, "max_epochs": 4, "patience": 2}


def run(quick: bool) -> dict[str, Any]:
    settings = QUICK if quick else FULL
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in METHODS}
    for seed in settings["seeds"]:
        for key, (label, *options) in METHODS.items():
            with tempfile.TemporaryDirectory() as tmp:
                result = _one(Path(tmp), key, seed, settings, options)
            print(
                f"B1 {label} seed {seed}: {result['best_val']:.5f} after {result['epochs']} epochs"
            )
            runs[key].append(result)
    return {
        **environment(),
        "dataset": "co2 (weekly, horizon 13)",
        "space": "bench/spaces/search.py",
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "labels": {key: label for key, (label, *_) in METHODS.items()},
        "runs": runs,
        "summary": _summary(runs, settings["budget"]),
    }


def _one(
    folder: Path, key: str, seed: int, settings: dict[str, Any], options: list[str]
) -> dict[str, Any]:
    study = f"b1-{key}-{seed}"
    tune(
        folder, study, "--dataset", "co2", "--space", str(SPACES / "search.py"),
        "--trials", "1000", "--epoch-budget", str(settings["budget"]),
        "--max-epochs", str(settings["max_epochs"]), "--patience", str(settings["patience"]),
        "--seed", str(seed), *options,
    )  # fmt: skip
    used, best, best_trial = 0, float("inf"), None
    curve: list[list[float]] = []
    trials = study_trials(folder, study)
    for trial in trials:
        if used + int(trial.user_attrs.get("epochs_run", 0)) > settings["budget"]:
            break  # ends past the budget: not counted
        used += int(trial.user_attrs.get("epochs_run", 0))
        if trial.state.name == "COMPLETE" and trial.value is not None and trial.value < best:
            best, best_trial = trial.value, trial
        if best_trial is not None:
            curve.append([used, best])
    test = (test_metrics(load_study(folder, study), best_trial) or {}) if best_trial else {}
    return {
        "seed": seed,
        "best_val": best,
        "test_mse": test.get("mse"),
        "epochs": used,
        "trials": len(trials),
        "curve": curve,
    }


def epochs_to_reach(curve: list[list[float]], target: float) -> float | None:
    """Epochs after which the best-so-far is at or below `target` (None: never)."""
    return next((epochs for epochs, best in curve if best <= target), None)


def _summary(runs: dict[str, list[dict[str, Any]]], budget: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, results in runs.items():
        vals = [r["best_val"] for r in results]
        tests = [r["test_mse"] for r in results if r["test_mse"] is not None]
        out[key] = {
            "best_val_median": median(vals),
            "best_val_range": [min(vals), max(vals)],
            "test_mse_median": median(tests) if tests else None,
            "test_mse_range": [min(tests), max(tests)] if tests else None,
        }
    # Target 1: the default reaches random search's final best within half its epochs.
    fractions = []
    for default, random in zip(runs["default"], runs["random"], strict=True):
        reached = epochs_to_reach(default["curve"], random["best_val"])
        fractions.append(None if reached is None else reached / budget)
    out["default_epochs_to_random_best"] = fractions
    out["target_half_budget"] = all(f is not None and f <= 0.5 for f in fractions)
    default_val = out["default"]["best_val_median"]
    out["target_beats_keras_tuner"] = all(
        default_val < out[key]["best_val_median"] for key in ("kt_hyperband", "kt_bayesian")
    )
    return out
