"""A served model's files in MLflow: the signature of its raw requests, the
files and pyfunc parts it is logged as, its pinned requirements, and reading a
logged model back (its `.keras` file, or the loaded Keras model).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from tuner.config import MODEL_URI_SCHEMES
from tuner.devices import serving_backend
from tuner.errors import InputError, Opt
from tuner.model.serving import SavedModel, respond
from tuner.paths import MODEL_FILE
from tuner.tasks.base import get_task

if TYPE_CHECKING:
    from tuner.model.transfer import Pretrained

PREPROCESSING_FILE = "preprocessing.json"


def served_signature(
    model: Any, preprocessing: Mapping[str, Any], example: tuple[Any, dict[str, Any] | None]
) -> tuple[Any, Any]:
    """The signature of a served model, from its answer to a raw request, and the
    request as MLflow's input example."""
    request, params = example
    answer = respond(SavedModel(model, dict(preprocessing)), request, params)
    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values: a served model
        # refuses a request with missing values anyway (400, with the column named).
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(request, answer, params=params)
    signature = get_task(preprocessing["task"]).served_signature(signature)
    return signature, (request, params) if params else request


def save_model_files(folder: Path, model: Any, preprocessing: Mapping[str, Any]) -> dict[str, Path]:
    """The files a served model is made of: `model.keras` and `preprocessing.json`."""
    files = {"keras_model": folder / MODEL_FILE, "preprocessing": folder / PREPROCESSING_FILE}
    model.save(files["keras_model"])
    files["preprocessing"].write_text(json.dumps(dict(preprocessing), indent=2))
    return files


def pyfunc_parts(files: Mapping[str, Path]) -> dict[str, Any]:
    """How a served model is written as an MLflow pyfunc (logged, or saved in a
    bundle): this folder's `pyfunc.py` as the model from code, the model files as
    artifacts, this package's code beside them, requirements from the public index."""
    return {
        "python_model": str(Path(__file__).with_name("pyfunc.py")),
        "artifacts": {name: str(path) for name, path in files.items()},
        "code_paths": [str(Path(__file__).resolve().parents[1])],
        "pip_requirements": model_requirements(),
    }


def download_model_file(model_uri: str, target: Path, tracking_uri: str) -> None:
    """Copy the `.keras` file of a model logged with `Tracker.log_champion` (or of an
    artifact folder holding one) to `target`."""
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        found = list(local.rglob(MODEL_FILE))
        if not found:
            raise InputError(f"logged model {model_uri} holds no {MODEL_FILE}; log it again.")
        shutil.copyfile(found[0], target)


def load_logged_model(model_uri: str, tracking_uri: str) -> Any:
    """The Keras model behind a model logged with `Tracker.log_champion`, or behind
    any artifact folder holding a `.keras` file (safe mode)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / MODEL_FILE
        download_model_file(model_uri, target, tracking_uri)
        from tuner.model.layers import load_model  # deferred: Keras, which the runner never needs

        return load_model(target)


def model_requirements() -> list[str]:
    """Pinned requirements of a served model: Keras and a backend, MLflow, and what
    this package's serving code imports (NumPy, pandas, scikit-learn), all on the
    public index; the package itself travels as code, not as a requirement."""
    # Stated rather than inferred: inference loads the model in a subprocess,
    # which costs seconds per logged model.
    # A .keras file loads under any backend, whichever trained it; where it is
    # served KERAS_BACKEND is usually unset, and Keras then needs TensorFlow. On a
    # host without TensorFlow (a JAX-only GPU host), the backend it has: the pyfunc
    # picks it where KERAS_BACKEND is unset.
    packages = ("keras", serving_backend(), "mlflow", "numpy", "pandas", "scikit-learn")
    return [f"{p}=={version(p)}" for p in packages]


def load_pretrained(source: str | None, tracking_uri: str) -> Pretrained | None:
    """The model trials start from (--init-from), loaded once per worker in safe mode."""
    if source is None:
        return None
    # Deferred: Keras, which the runner process never loads.
    from tuner.model.layers import load_model
    from tuner.model.transfer import Pretrained

    try:
        if source.startswith(MODEL_URI_SCHEMES):
            model = load_logged_model(source, tracking_uri)
        else:
            model = load_model(Path(source) / MODEL_FILE)
    except (ValueError, OSError, MlflowException) as e:  # safe mode refuses code, bad URIs
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{Opt('init_from', source)}: cannot be loaded safely ({reason})."
        ) from None
    return Pretrained.of(model, source=source)
