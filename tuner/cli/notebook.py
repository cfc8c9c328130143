"""Run the analysis notebook headless with parameters (what `make notebook` does).

The notebook's cell tagged `parameters` holds the defaults; the values given
here go into a cell inserted after it (as papermill does), then nbclient
executes every cell and the executed copy is written beside its figures.

    python -m tuner.cli.notebook --study co2 [--storage URL] [--tracking-uri URI]
        [--compare-with STUDY [--compare-storage URL]] [--out notebooks/out]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tuner.cli.options import declared
from tuner.stores import storage_url, tracking_uri

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"


def parameters_source(values: dict[str, Any]) -> str:
    """The injected parameters cell: one Python assignment per value (`None`, not
    JSON's `null`)."""
    return "\n".join(f"{k} = {v!r}" for k, v in values.items())


def run_notebook(parameters: dict[str, Any], out: Path, *, notebook: Path = NOTEBOOK) -> Path:
    """Execute `notebook` with `parameters`; returns the executed copy's path.

    Figures are written to `out/figures-<study>/` by the notebook itself.
    """
    # Deferred: the notebook runner's libraries (dev extra) load only when it runs.
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    index = next(
        i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])
    )
    values = parameters | {"figures_dir": str(out / f"figures-{parameters['study']}")}
    injected = nbformat.v4.new_code_cell(
        parameters_source(values), metadata={"tags": ["injected-parameters"]}
    )
    nb.cells.insert(index + 1, injected)
    out.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(Path.cwd())}}
    )
    try:
        client.execute()
    finally:
        target = out / f"analysis-{parameters['study']}.ipynb"
        nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.cli.notebook", description=__doc__)
    declared(parser, "study", help="study name (default: the most recently started one)")
    declared(parser, "storage")
    declared(parser, "tracking_uri")
    parser.add_argument("--compare-with", help="a second study to compare with")
    parser.add_argument("--compare-storage", help="its storage (default: --storage)")
    parser.add_argument("--out", type=Path, default=Path("notebooks/out"))
    args = parser.parse_args(argv)
    args.storage, args.tracking_uri = storage_url(args.storage), tracking_uri(args.tracking_uri)
    if args.study is None:
        from tuner.study.storage import latest_study  # deferred: Optuna, for this case only

        args.study = latest_study(args.storage)
    target = run_notebook(
        {
            "study": args.study,
            "storage": args.storage,
            "tracking_uri": args.tracking_uri,
            "compare_with": args.compare_with,
            "compare_storage": args.compare_storage or args.storage,
        },
        args.out,
    )
    print(f"executed notebook written to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
