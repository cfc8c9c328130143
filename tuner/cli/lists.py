"""The commands that show what is there and serve it: `tuner status`, `best`,
`datasets`, `spaces`, `ui` and `storage-proxy` (each imports its work when it
runs, so `tuner --help` stays fast)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tuner.errors import InputError
from tuner.stores import mask_secrets, storage_url, tracking_uri


def status(args: argparse.Namespace) -> int:
    from tuner import api
    from tuner.report.console import out, trials_table
    from tuner.study.summary import trial_rows

    result = api.open_study(args.study, storage=storage_url(args.storage))
    rows = trial_rows(result.study)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        metric = (result.study.metric_names or ["value"])[0]
        best = result.summary["best_trial"]
        title = f"study {args.study}: {len(rows)} trials"
        front = [r["trial"] for r in result.summary["front"] or []]
        out.print(trials_table(rows, title=title, metric=metric, best=best, front=front))
    return 0


def best(args: argparse.Namespace) -> int:
    from tuner import api
    from tuner.report.console import out, results_table

    summary = api.open_study(args.study, storage=storage_url(args.storage)).summary
    del summary["tracking_uri"]
    if summary["best_trial"] is None:
        raise InputError(f"--study {args.study}: no trial has completed yet; run `tuner tune`.")
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        out.print(f"best trial #{summary['best_trial']}: {summary['best_params']}")
        if summary["best_measured"]:
            out.print(f"measured: {summary['best_measured']}")
        for row in summary["front"] or []:
            values = ", ".join(f"{k} {v:.5g}" for k, v in row.items() if k != "trial")
            out.print(f"Pareto front: trial #{row['trial']}: {values}")
        out.print(results_table(summary))
    return 0


def datasets(args: argparse.Namespace) -> int:
    from tuner.data.catalog import builtin_datasets, load_dataset
    from tuner.report.console import dataset_row, datasets_lines

    loaded = [load_dataset(spec) for spec in builtin_datasets().values()]
    if args.json:
        print(json.dumps([dataset_row(d) for d in loaded], indent=2))
    else:
        print(f"{'name':<20} {'task':<15} {'train/val/test':<20} shape")
        print("\n".join(datasets_lines(loaded)))
    return 0


def ui(args: argparse.Namespace) -> int:
    """Print each study's runs link (the view that shows its objective), then become
    `mlflow ui` over the same store."""
    from tuner.tracking.tracker import ui_links

    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be 1-65535, but got {args.port}; pass a free port.")
    uri = tracking_uri(args.tracking_uri)
    if not uri.startswith("sqlite:///"):
        raise InputError(
            f"--tracking-uri {mask_secrets(uri)} is not a local SQLite store: a tracking "
            "server serves its own UI; open its address"
        )
    base = f"http://{args.host}:{args.port}"
    for study, link in ui_links(uri, base):
        print(f"{study}: {link}", flush=True)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    artifacts = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    command = [mlflow, "ui", "--backend-store-uri", uri, "--default-artifact-root", str(artifacts)]
    # MLflow's job runner (GenAI jobs, which no study uses) keeps eight processes
    # polling the store: about one CPU core busy for as long as the UI is open.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(mlflow, [*command, "--host", args.host, "--port", str(args.port)])


def storage_proxy(args: argparse.Namespace) -> int:
    """Serve the study database to workers that pass --storage grpc://HOST:PORT."""
    from tuner.study.storage import serve_proxy

    serve_proxy(storage_url(args.storage), host=args.host, port=args.port)
    return 0


def spaces(args: argparse.Namespace) -> int:
    from tuner.space import builtin_spaces, load_space

    for name in builtin_spaces():
        print(f"{name:<12} {load_space(name).describe()}")
    return 0
