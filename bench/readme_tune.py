"""Write README.md's `make tune` figures from a run of `make tune` in a fresh clone.

    python bench/readme_tune.py      # or: make readme-figures (about 5 minutes here)

The figures state the commit they come from, so the tree must hold no uncommitted
change to a tracked file. The clone installs itself (`make install`, timed apart)
and runs `make tune ARGS=--json` exactly as the README tells a new user to; the
block between the README's markers is replaced, nothing else. The study repeats
itself to the bit at one commit (tests/study/test_reproducible.py), so anyone who
runs the command at that commit gets these trials.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- make-tune figures: written by bench/readme_tune.py, do not edit -->"
END = "<!-- end of make-tune figures -->"
_VERSIONS = ("jax", "keras", "optuna", "mlflow")


def main() -> int:
    changed = _git("status", "--porcelain", "--untracked-files=no").strip()
    if changed:
        print("readme_tune: commit first; the figures state the commit they come from "
              f"(changed: {changed.splitlines()[0].strip()} ...).", file=sys.stderr)  # fmt: skip
        return 2
    commit = _git("rev-parse", "--short", "HEAD").strip()
    with tempfile.TemporaryDirectory(prefix="readme-tune-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        install_s = _timed(["make", "install"], clone)[0]
        tune_s, out = _timed(["make", "-s", "tune", "ARGS=--json"], clone)
        summary = json.loads(out[out.index("{") :])
        best = _best_trial(clone, summary)
    block = _block(summary, best, commit=commit, install_s=install_s, tune_s=tune_s)
    text = README.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"readme_tune: README.md lacks the markers {BEGIN!r} ... {END!r}.", file=sys.stderr)
        return 2
    README.write_text(pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text))
    print(block)
    return 0


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def _timed(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"readme_tune: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def _best_trial(clone: Path, summary: dict[str, Any]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=summary["study"], storage=f"sqlite:///{clone / 'studies' / 'optuna.db'}"
    )
    return study.trials[summary["best_trial"]]


def _block(summary: dict[str, Any], best: Any, *, commit: str, install_s: float,
           tune_s: float) -> str:  # fmt: skip
    p = best.params
    versions = ", ".join(f"{n} {metadata.version(n)}" for n in _VERSIONS)
    n = summary["n_complete"] + summary["n_pruned"] + summary["n_failed"]
    test, val, base = summary["best_test"], summary["best_val"], summary["baselines"]
    layers = int(p.get("layers", 1))
    units = " + ".join(str(p.get(f"units_{i}", 32)) for i in range(layers))
    model = (
        f"{p.get('cell', 'lstm').upper()}, {layers} layer{'s' if layers > 1 else ''} of "
        f"{units} units, window {p['seq_len']} weeks, normalisation {p.get('normalize')}, "
        f"naive head {p.get('naive_head')}, dropout {p.get('dropout', 0):.2g}, "
        f"{p.get('optimizer')} {p.get('learning_rate', 0):.2g} ({p.get('lr_schedule')} "
        f"schedule), L2 {p.get('l2', 0):.2g}, batch {p.get('batch_size')}; best round "
        f"{summary['best_epoch']} of {best.user_attrs.get('epochs_run')} run"
    )
    return "\n".join([
        f"Measured on the {platform.machine()} {os.cpu_count()}-core machine this project is "
        f"developed on ({versions}, Python {platform.python_version()}; trials on the CPU "
        f"default backend), from a fresh clone at commit {commit}, "
        f"{time.strftime('%Y-%m-%d')}: `make install` took {install_s:.0f} s (from a warm "
        f"package cache), then `make tune ARGS=--json` **{tune_s / 60:.0f} min "
        f"{tune_s % 60:.0f} s** for {n} trials: {summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned by Hyperband, {summary['n_failed']} failed. Best "
        f"trial #{summary['best_trial']} ({model}), test split of the last 15 % of weeks, "
        "forecasting 13 weeks ahead:",
        "",
        "| model | test MSE (standardised) | test MAE (ppm) |",
        "|---|---|---|",
        f"| tuned LSTM (selected on validation) | **{test['mse']:.3g}** | "
        f"**{test['mae_orig']:.3f}** |",
        f"| seasonal naive (same week last year) | {base['seasonal_naive_test']['mse']:.3g} | "
        f"{base['seasonal_naive_test']['mae_orig']:.3f} |",
        f"| persistence (last week repeated) | {base['persistence_test']['mse']:.3g} | "
        f"{base['persistence_test']['mae_orig']:.3f} |",
        "",
        f"The best model was chosen on validation MSE ({val['mse']:.3g}, against "
        f"{base['seasonal_naive_val']['mse']:.3g} for seasonal naive); the test split was "
        "evaluated once, for that trial only.",
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
