"""The `tuner` command line.

Exit codes: 0 done; 2 bad input (one line on stderr); 1 the tracking server
stopped answering (one line) or an unexpected failure (traceback written to a
log file whose path is printed); 130 / 143 when interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# MLflow's "View run ... at URL" lines would break --json on stdout and show the URL's password.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# The CLI draws to files only (the library forces no backend: notebooks display).
os.environ.setdefault("MPLBACKEND", "Agg")

# Each command imports its work when it runs: Optuna, MLflow and Keras take seconds
# to import, and `tuner --help`, `tuner datasets` and bad flags answer at once.
from tuner.cli import lists
from tuner.cli.options import declared, parsed_by
from tuner.config import OPTIONS, TuneConfig
from tuner.devices import default_backend, import_keras_quietly
from tuner.errors import DiskFull, InputError, TrackingUnavailable, disk_full, worded
from tuner.options import flag
from tuner.paths import LOG_DIR
from tuner.stores import storage_url, tracking_server
from tuner.tasks.base import get_task


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"tuner: error: {message}; see `{self.prog} --help`.", file=sys.stderr)
        raise SystemExit(2)


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or "default" in text or not text:
            return text
        return f"{text} (default: %(default)s)"


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, but got {text!r}") from None


def _add_options(tune: argparse.ArgumentParser) -> None:
    """`tuner tune`'s options, one for each `TuneConfig` field, as declared there."""
    dataset = tune.add_argument_group("dataset options (override the dataset definition)")
    groups = {"": tune, "dataset": dataset}
    defaults = TuneConfig()
    for name, option in OPTIONS.items():
        groups[option.group].add_argument(
            flag(name),
            default=getattr(defaults, name),
            help=option.text(flags=True),
            metavar=option.metavar,
            type=parsed_by(option.parse or str),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tuner", description="Tune Keras LSTM models with Optuna and MLflow.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    tune = sub.add_parser(
        "tune", help="create or resume a study and run trials", formatter_class=_Help
    )
    _add_options(tune)
    tune.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    tune.set_defaults(handler=_cmd_tune)
    for name, helptext, handler in (
        ("status", "table of the study's trials", lists.status),
        ("best", "best trial's params and metrics", lists.best),
    ):
        cmd = sub.add_parser(name, help=helptext)
        declared(cmd, "study", required=True, help="study name")
        declared(cmd, "storage")
        cmd.add_argument("--json", action="store_true")
        cmd.set_defaults(handler=handler)
    _add_worker(sub)
    _add_servers(sub)
    datasets = sub.add_parser("datasets", help="list built-in datasets: task, shape, split, source")
    datasets.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    datasets.set_defaults(handler=lists.datasets)
    sub.add_parser("spaces", help="list built-in search spaces").set_defaults(handler=lists.spaces)
    _add_export_predict(sub)
    return parser


def _add_worker(sub: Any) -> None:
    worker = sub.add_parser("worker", help="join an existing study and run its missing trials")
    declared(worker, "study", required=True, help="study name")
    declared(worker, "storage")
    declared(worker, "tracking_uri", help="MLflow tracking URI (default: the study's)")
    for name in ("workers", "gpus", "trials_per_gpu"):
        declared(worker, name)
    declared(worker, "trials", help="total finished trials wanted (default: the study's)")
    worker.add_argument("--json", action="store_true")
    worker.set_defaults(handler=_cmd_worker)


def _add_servers(sub: Any) -> None:
    """`tuner storage-proxy` and `tuner ui`."""
    proxy = sub.add_parser(
        "storage-proxy",
        help="serve a study database to many workers through Optuna's gRPC storage proxy",
    )
    declared(
        proxy, "storage", help="database URL the proxy serves (default: $TUNER_STORAGE, else local)"
    )
    proxy.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    proxy.add_argument("--port", type=_positive_int, default=13000, help="port (default: 13000)")
    proxy.set_defaults(handler=lists.storage_proxy)
    ui = sub.add_parser(
        "ui", help="serve the MLflow UI over a local store, printing each study's runs link"
    )
    declared(ui, "tracking_uri")
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    ui.add_argument("--port", type=_positive_int, default=5000, help="port (default: 5000)")
    ui.set_defaults(handler=lists.ui)


def _add_export_predict(sub: Any) -> None:
    export = sub.add_parser("export", help="write the best model of a study as a bundle")
    declared(export, "study", help="study name (default: the most recently started one)")
    export.add_argument("--out", required=True, type=Path, help="new or empty folder")
    export.add_argument(
        "--format", default="keras", help="comma-separated: keras (always), savedmodel, mlflow"
    )
    export.add_argument(
        "--refit",
        action="store_true",
        help="retrain the best configuration on train+validation for its best epoch count",
    )
    export.add_argument(
        "--trial",
        type=_positive_int,
        help="export this trial instead of the champion (a Pareto-front member of a study run "
        "with --objectives, or any complete trial with --refit)",
    )
    declared(export, "storage")
    declared(export, "tracking_uri")
    export.set_defaults(handler=_cmd_export)
    predict = sub.add_parser("predict", help="predict with an exported bundle")
    predict.add_argument("--model", required=True, type=Path, help="bundle folder")
    predict.add_argument("--input", type=Path, help="CSV/Parquet history or .npz sequences")
    predict.add_argument("--out", type=Path, help="CSV file to write (default: stdout)")
    predict.add_argument("--prompt", help="character models: text to continue")
    predict.add_argument("--length", type=_positive_int, default=200, help="characters to add")
    predict.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    predict.add_argument("--seed", type=_positive_int, default=0)
    predict.set_defaults(handler=_cmd_predict)


def _cmd_tune(args: argparse.Namespace) -> int:
    config = TuneConfig(**{name: getattr(args, name) for name in OPTIONS})
    # The data is checked before the training stack loads (a bad file is reported
    # in seconds); the study set-up reuses this load.
    from tuner.data.catalog import load_dataset, resolve_dataset

    load_dataset(resolve_dataset(config.dataset, **config.dataset_options()))
    from tuner import api  # deferred, as every command's work: `tuner --help` stays fast
    from tuner.report.console import quiet_libraries

    quiet_libraries()
    _report(api.run(config), as_json=args.json)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from tuner import api
    from tuner.report.console import quiet_libraries
    from tuner.study.setup import worker_config

    quiet_libraries()
    url = _storage_url(args)
    config = worker_config(
        api.open_study(args.study, storage=url).study,
        storage=url,
        tracking_uri=args.tracking_uri,
        workers=args.workers,
        gpus=args.gpus,
        trials=args.trials,
        trials_per_gpu=args.trials_per_gpu,
    )
    _report(api.run(config, role="worker"), as_json=args.json)
    return 0


def _report(result: Any, *, as_json: bool) -> None:
    """Top trials and the best trial against the baselines; the summary as JSON on request."""
    from tuner.report.console import err, results_table, trials_table
    from tuner.study.summary import trial_rows

    summary = result.summary
    rows = sorted(
        (r for r in trial_rows(result.study) if r["state"] == "complete"), key=lambda r: r["value"]
    )
    metric = (result.study.metric_names or ["value"])[0]
    front = [r["trial"] for r in summary["front"] or []]
    title = f"top trials ({metric})"
    if front:  # --objectives: the front, whatever its length
        rows, title = [r for r in rows if r["number"] in front], "the Pareto front"
    top = trials_table(
        rows,
        title=title,
        metric=metric,
        best=summary["best_trial"],
        limit=None if front else 5,
        front=front,
    )
    err.print(top)
    err.print(results_table(summary))
    link = summary.get("mlflow_ui")
    if link:
        err.print(mlflow_line(link, summary["tracking_uri"]), soft_wrap=True)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))


def mlflow_line(link: str, tracking: str) -> str:
    """Where the study's runs are; `make ui` serves a local store only."""
    return f"MLflow runs: {link}" + ("" if tracking_server(tracking) else "  (`make ui` serves it)")


def _cpu_backend() -> None:
    """Load and score models on the backend CPU trials use (JAX when installed, unless
    KERAS_BACKEND says otherwise): it starts faster than TensorFlow, whose native
    start-up lines would otherwise fill stderr on a machine without a GPU."""
    os.environ.setdefault("KERAS_BACKEND", default_backend(gpu=None))


def _cmd_export(args: argparse.Namespace) -> int:
    from tuner import api
    from tuner.report.console import quiet_libraries
    from tuner.study.storage import latest_study

    quiet_libraries()
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if not {"savedmodel", "onnx"} & set(formats):  # those two are written through TensorFlow
        _cpu_backend()
    import_keras_quietly()
    url = _storage_url(args)
    result = api.open_study(
        args.study or latest_study(url), storage=url, tracking_uri=args.tracking_uri
    )
    out = result.export(args.out, formats=formats, refit=args.refit, trial=args.trial)
    print(f"exported study {result.study.study_name} to {out}", file=sys.stderr)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    _cpu_backend()  # before anything imports Keras
    import_keras_quietly()
    from tuner import api
    from tuner.export.predict import check_out, predict_file, read_input

    check_out(args.out)  # the input and the output path before the model loads
    rows = read_input(args.input) if args.input is not None else None
    model = api.load_bundle(args.model)
    if get_task(model.task).reads_prompt:
        if args.prompt is None:
            raise InputError("--prompt: a character model continues a prompt; pass --prompt TEXT.")
        text = model.predict(
            args.prompt, length=args.length, temperature=args.temperature, seed=args.seed
        )
        _emit_text(str(text), args.out)
        return 0
    if args.input is None:
        raise InputError(f"--input: a {model.task} model needs an input file; pass --input FILE.")
    frame = predict_file(model.bundle, args.input, rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def _emit_text(text: str, out: Path | None) -> None:
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        print(text)


def _storage_url(args: argparse.Namespace) -> str:
    return storage_url(args.storage)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed as one line
        return int(e.code or 0)
    # Installed explicitly: a process started in the background by a
    # non-interactive shell inherits SIGINT ignored.
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return _dispatch(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _dispatch(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with worded(flags=True):  # input errors name this command's flags
            return handler(args)
    except InputError as e:
        print(f"tuner: error: {e}", file=sys.stderr)
        return 2
    except TrackingUnavailable as e:
        print(f"tuner: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        signame = str(e) or "SIGINT"
        print(
            f"tuner: interrupted by {signame}; run the same command again to resume.",
            file=sys.stderr,
        )
        return 143 if signame == "SIGTERM" else 130
    except DiskFull as e:
        print(f"tuner: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if (full := disk_full(e)) is not None:  # in this process: the crash log cannot be
            print(f"tuner: error: {full}", file=sys.stderr)  # written either
            return 1
        log = _write_crash_log()
        print(f"tuner: unexpected error; traceback written to {log}", file=sys.stderr)
        return 1


def _write_crash_log() -> Path | str:
    """The traceback in logs/ of the working folder, or of the temporary folder where
    that one cannot be written (a read-only folder); its last line where neither can."""
    name = f"tuner-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (LOG_DIR, Path(tempfile.gettempdir()) / "tuner-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = (folder / name).resolve()
            path.write_text(traceback.format_exc())
            return path
        except OSError:
            continue
    return f"nowhere (no folder writable); the error: {traceback.format_exc().splitlines()[-1]}"


def console_entry(argv: Sequence[str] | None = None) -> Any:
    sys.exit(main(argv))
