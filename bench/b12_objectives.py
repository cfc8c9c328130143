"""B12 accuracy against latency: a two-objective study (`--objectives
val_loss,latency_ms`) against the single-objective study, same data, same time.

Per set, two studies of the default space with the same `--timeout` and seed:
the single-objective default, and `--objectives val_loss,latency_ms` (Optuna's
multi-objective TPE, no pruning). Both record latency_ms, params and size_kb on
every trial through a bound no model reaches (`--constraint`; with every trial
within it, Optuna's constrained TPE splits trials as the unconstrained one does),
so both champions are measured the same way: latency is the median of 30 batch-1
predictions of the trained model in its worker process (this CPU, the tuner's
threads). Reported: each study's champion (validation and test metric, latency,
size), the two-objective study's Pareto front, and the fastest front member
within 1 % of that study's best validation objective (`--pick latency_ms`'s
choice), against the single-objective champion.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from common import HERE, environment, load_study, tune

SETS = {"co2": ("forecast", 300), "italy_power_demand": ("classify", 240)}  # kind, seconds
QUICK_SECONDS = 45
TRIALS = 200  # the time limit ends each study first
NEVER_BINDING = "latency_ms<=1000000,params<=1000000000,size_kb<=1000000000"
WITHIN = 0.01


def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        **environment(),
        "protocol": "default space, seed 42; the same --timeout for the single- and the "
        "two-objective study; test reported for champions only",
        "results": {},
    }
    for name, (kind, seconds) in SETS.items():
        seconds = QUICK_SECONDS if quick else seconds
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            row: dict[str, Any] = {"kind": kind, "seconds": seconds}
            for study, extra in (
                ("single", []),
                ("front", ["--objectives", "val_loss,latency_ms"]),
            ):
                started = time.perf_counter()
                (folder / study).mkdir()
                summary = tune(
                    folder / study, f"{name}-{study}", "--dataset", name, "--trials",
                    str(TRIALS), "--timeout", str(seconds), "--constraint", NEVER_BINDING,
                    *extra,
                )  # fmt: skip
                row[study] = _study(folder / study, f"{name}-{study}", summary)
                row[study]["wall_s"] = round(time.perf_counter() - started, 1)
                row["objective"] = summary["objective"]
            row["picked"] = _fastest_near_best(row["front"]["trials"])
            single = row["single"]["champion"]
            row["speedup"] = round(single["latency_ms"] / row["picked"]["latency_ms"], 2)
            row["size_ratio"] = round(single["size_kb"] / row["picked"]["size_kb"], 2)
            out["results"][name] = row
            print(f"B12 {name}: {row['speedup']}x faster within 1 %", flush=True)
    _figure(out["results"], HERE / "results" / ("quick" if quick else ""))
    return out


def _study(folder: Path, study: str, summary: dict[str, Any]) -> dict[str, Any]:
    trials = [
        t for t in load_study(folder, study).trials if t.values and t.state.name == "COMPLETE"
    ]
    rows = [{"trial": t.number, "val": t.values[0], **t.user_attrs["measured"]} for t in trials]
    best = summary["best_trial"]
    champion = next(r for r in rows if r["trial"] == best)
    return {
        "complete": summary["n_complete"],
        "pruned": summary["n_pruned"],
        "champion": {**champion, "val_metrics": summary["best_val"], "test": summary["best_test"]},
        "front": [r["trial"] for r in summary["front"]] if summary["front"] else None,
        "trials": rows,
    }


def _fastest_near_best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(r["val"] for r in rows)
    near = [r for r in rows if r["val"] <= best + WITHIN * abs(best)]
    return min(near, key=lambda r: (r["latency_ms"], r["val"]))


def _figure(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5))
    for ax, (name, row) in zip(axes, results.items(), strict=True):
        front = set(row["front"]["front"] or ())
        trials = row["front"]["trials"]
        others = row["single"]["trials"]
        ax.scatter([r["latency_ms"] for r in others], [r["val"] for r in others], color="0.75",
                   marker="x", label="single-objective study: trial")  # fmt: skip
        ax.scatter([r["latency_ms"] for r in trials], [r["val"] for r in trials], alpha=0.5,
                   label="two-objective study: trial")  # fmt: skip
        on = sorted((r for r in trials if r["trial"] in front), key=lambda r: r["latency_ms"])
        ax.step([r["latency_ms"] for r in on], [r["val"] for r in on], where="post", color="C3",
                marker="o", label="its Pareto front")  # fmt: skip
        single = row["single"]["champion"]
        ax.scatter([single["latency_ms"]], [single["val"]], marker="*", s=220, color="k",
                   label="single-objective champion")  # fmt: skip
        picked = row["picked"]
        ax.scatter([picked["latency_ms"]], [picked["val"]], s=200, facecolors="none",
                   edgecolors="C2", linewidths=2, label="fastest within 1 %")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="latency_ms (batch 1, this CPU)",
               ylabel=row["objective"], title=name)  # fmt: skip
        ax.legend(fontsize=8)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / "b12_objectives.png", dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    import json
    import sys

    started = time.perf_counter()
    result = run("--quick" in sys.argv)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["command"] = "python bench/b12_objectives.py"
    path = HERE / "results" / ("quick" if "--quick" in sys.argv else "") / "b12_objectives.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
