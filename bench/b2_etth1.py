"""B2 quality against published results: ETTh1, the standard protocol of
../shared/datasets/README.md (rows 8640/11520/14400, scaler fit on train,
stride-1 windows), horizon 24, univariate (OT) and multivariate (7 columns).

The tuner selects by validation MSE only; the test MSE reported is the chosen
model's, on the standardised scale, beside the published LSTMa result and the
naive baselines computed on the same test windows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common import ETTH1, SPACES, environment, tune

COLUMNS = "HUFL,HULL,MUFL,MULL,LUFL,LULL,OT"
SETTINGS = {
    "univariate": {"target": "OT", "lstma_mse": 0.114, "informer_mse": 0.098},
    "multivariate": {"target": COLUMNS, "lstma_mse": 0.650, "informer_mse": None},
}
FULL = {"trials": 60, "max_epochs": 15, "timeout": 720, "settings": tuple(SETTINGS)}
QUICK = {"trials": 2, "max_epochs": 1, "timeout": 120, "settings": ("univariate",)}


def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    out: dict[str, Any] = {
        **environment(),
        "protocol": "ETTh1, horizon 24, borders 8640/11520/14400, standardised test MSE",
        "space": "bench/spaces/hourly.py (windows 24/48/96/168 + the default forecasting space)",
        "plan": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()},
        "results": {},
    }
    if not ETTH1.is_file():
        out["skipped"] = f"{ETTH1} is absent (reference data lives in ../shared/datasets/)"
        print(f"B2 skipped: {out['skipped']}")
        return out
    for name in plan["settings"]:
        with tempfile.TemporaryDirectory() as tmp:
            out["results"][name] = _one(Path(tmp), name, plan)
        row = out["results"][name]
        print(f"B2 {name}: test MSE {row['test_mse']:.4f} (LSTMa {row['lstma_mse']})")
    return out


def _one(folder: Path, name: str, plan: dict[str, Any]) -> dict[str, Any]:
    setting = SETTINGS[name]
    summary = tune(
        folder, f"etth1-{name}", "--dataset", str(ETTH1), "--space", str(SPACES / "hourly.py"),
        "--target", str(setting["target"]), "--time-col", "date", "--horizon", "24",
        "--split", "8640,11520,14400", "--seasonal-period", "24",
        "--trials", str(plan["trials"]), "--max-epochs", str(plan["max_epochs"]),
        "--timeout", str(plan["timeout"]),
    )  # fmt: skip
    baselines = summary["baselines"]
    naive = {
        "persistence": baselines["persistence_test"]["mse"],
        "seasonal_naive": baselines["seasonal_naive_test"]["mse"],
    }
    naive_val = {
        "persistence": baselines["persistence_val"]["mse"],
        "seasonal_naive": baselines["seasonal_naive_val"]["mse"],
    }
    test_mse = summary["best_test"]["mse"]
    return {
        "test_mse": test_mse,
        "test_mae": summary["best_test"]["mae"],
        "val_mse": summary["best_val"]["mse"],
        "lstma_mse": setting["lstma_mse"],
        "informer_mse": setting["informer_mse"],
        "naive_test_mse": naive,
        "naive_val_mse": naive_val,
        "trials_complete": summary["n_complete"],
        "trials_pruned": summary["n_pruned"],
        "best_params": summary["best_params"],
        "beats_lstma": test_mse < setting["lstma_mse"],
        "beats_best_naive": test_mse < min(naive.values()),
    }
