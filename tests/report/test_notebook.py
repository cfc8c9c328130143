"""The analysis notebook, executed headless on tiny finished studies: every
section must produce its figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import Finished
from tuner.cli.notebook import run_notebook

pytestmark = pytest.mark.slow


SECTIONS = (
    "optimization_history",
    "param_importances",
    "parallel_coordinates",
    "contour_top_two",
    "learning_curves",
    "best_model",
    "comparison",
)


def test_notebook_produces_every_figure(
    finished_studies: Callable[[str], Finished], tmp_path: Path
) -> None:
    co2, weather = finished_studies("co2"), finished_studies("seattle_weather")
    executed = run_notebook(
        {
            "study": "co2",
            "storage": co2.stores.storage,
            "tracking_uri": co2.stores.tracking,
            "compare_with": "seattle_weather",
            "compare_storage": weather.stores.storage,
        },
        tmp_path / "out",
    )
    figures = tmp_path / "out" / "figures-co2"
    for name in SECTIONS:
        png = figures / f"{name}.png"
        assert png.is_file() and png.stat().st_size > 5_000, f"section {name} drew no figure"
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= len(SECTIONS)  # shown inline as well as saved


def test_study_figures_display_in_jupyter(
    finished_studies: Callable[[str], Finished], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a Jupyter kernel (its own inline backend, as Jupyter starts it), the figures
    of `tuner.open_study(...).figures()` display as images: importing the library
    must not switch matplotlib to a file-only backend."""
    co2 = finished_studies("co2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the CLI's setting, not Jupyter's
    source = (
        "import tuner\n"
        f"result = tuner.open_study('co2', storage={co2.stores.storage!r}, "
        f"tracking_uri={co2.stores.tracking!r})\n"
        "result.figures()['optimization_history']"
    )
    _run_cell_showing_an_image(source, Path.cwd())


def _run_cell_showing_an_image(source: str, folder: Path) -> list[dict]:
    """Run `source` as one cell in a real kernel started in `folder`; it must raise
    nothing and display an image. Returns the cell's outputs."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    resources = {"metadata": {"path": str(folder)}}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
    outputs: list[dict] = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    assert [o for o in outputs if "image/png" in o.get("data", {})], outputs
    return outputs


def test_a_study_tuned_in_a_notebook_cell_shows_its_figures_and_little_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tuner.tune` in a real Jupyter kernel: the trials report one line each (no
    redrawn progress bars in the cell), and `result.figures()` displays images."""
    from tests.conftest import SPACES, Stores

    stores = Stores(tmp_path)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the CLI's setting, not Jupyter's
    source = (
        "import tuner\n"
        f"result = tuner.tune('co2', {str(SPACES / 'tiny.py')!r}, study='nb', trials=2, "
        f"max_epochs=1, storage={stores.storage!r}, tracking_uri={stores.tracking!r})\n"
        "figures = result.figures()\n"
        "figures['optimization_history']"
    )
    outputs = _run_cell_showing_an_image(source, tmp_path)
    stream = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert len(stream.encode()) < 5_000, stream[-2000:]
    assert "\x1b[" not in stream and "Downloading artifacts" not in stream, stream[-2000:]
