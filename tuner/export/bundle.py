"""Export bundles: the best model of a study with its preprocessing and metadata.

A bundle is a folder:

    model.keras          the trained model (loads in Keras safe mode)
    preprocessing.json   scaler, columns, window, horizon, classes or vocabulary
    metadata.json        study, trial, params, metrics, data fingerprint,
                         package versions and the SHA-256 of every other file
    savedmodel/          TensorFlow SavedModel (`--format savedmodel`)
    mlflow_model/        MLflow pyfunc model with the same preprocessing (`--format mlflow`)
    model.onnx           ONNX model, checked against Keras with onnxruntime (`--format onnx`)

`load_bundle` checks the hashes before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tuner.errors import InputError, Opt
from tuner.model import params as hparams
from tuner.model.budget import ROUNDS_ATTR
from tuner.model.layers import load_model
from tuner.model.portable import in_data_units, is_in_data_units, raw_inputs
from tuner.model.serving import SavedModel, request_example
from tuner.model.train import evaluate, refit
from tuner.paths import MODEL_FILE
from tuner.study import records
from tuner.study.setup import stored_config, stored_dataset
from tuner.study.summary import champion, completed, test_metrics
from tuner.tasks.base import get_task
from tuner.tracking.models import download_model_file, pyfunc_parts, served_signature
from tuner.tracking.tracker import Tracker

FORMATS = ("keras", "savedmodel", "mlflow", "onnx")
METADATA = "metadata.json"
PREPROCESSING = "preprocessing.json"
MODEL = MODEL_FILE


@dataclass(frozen=True)
class Bundle(SavedModel):
    """A loaded, verified bundle: its model and preprocessing, folder and metadata."""

    path: Path
    metadata: dict[str, Any]


def export_study(
    study: Any,
    *,
    out: Path,
    formats: tuple[str, ...] = ("keras",),
    tracking_uri: str,
    refit: bool = False,
    trial: int | None = None,
) -> Path:
    """Write the bundle of `study`'s best trial to `out` (a new or empty folder).

    `refit`: retrain the best configuration on train plus validation for the best
    trial's number of epochs and export that model instead; it is recorded as its
    own MLflow run and registered model version (alias `refit`). `trial`: that trial
    instead of the best (one that logged its model: a champion at its time, or any
    feasible trial of a multi-objective study; with `refit`, any complete trial).
    """
    best = _exportable(study, out, formats)
    if trial is not None:
        best = _chosen_trial(study, trial, refit=refit)
    data = stored_dataset(study)
    if data.fingerprint["sha256"] != records.get(study, records.FINGERPRINT)["sha256"]:
        raise InputError(
            f"dataset file {data.spec.path} changed since study {study.study_name} was run "
            "(SHA-256 differs); restore it to export this study's preprocessing."
        )
    # A top-K ensemble that validated better than the best trial is the champion.
    ensemble = records.get(study, records.ENSEMBLE, None) or {}
    champion = ensemble if ensemble.get("champion") and not refit and trial is None else {}
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        refitted = None
        if refit:
            refitted = _refit(study, best, data, staging / MODEL, tracking_uri)
        else:
            download_model_file(
                champion.get("model_uri", best.user_attrs[records.MODEL_URI]),
                staging / MODEL,
                tracking_uri,
            )
            _in_data_units(staging / MODEL, data.preprocessing())
        seq_len = champion.get("seq_len", best.params.get("seq_len"))
        preprocessing = data.preprocessing() | {"seq_len": seq_len, "units": "data"}
        _write_json(staging / PREPROCESSING, preprocessing)
        if "savedmodel" in formats:
            _savedmodel(staging)
        if "mlflow" in formats:
            _mlflow_model(staging, data, preprocessing)
        onnx = None
        if "onnx" in formats:
            sample = data.windows(int(preprocessing["seq_len"] or data.info.max_seq_len))["test"]
            onnx = _onnx(staging, raw_inputs(np.ascontiguousarray(sample.x[:64]), preprocessing))
        model = {"champion": champion, "refit": refitted, "onnx": onnx}
        _write_json(staging / METADATA, _metadata(study, best, model, staging))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        shutil.copytree(staging, out)
    return out


def _metadata(study: Any, best: Any, model: dict[str, Any], staging: Path) -> dict[str, Any]:
    """What `metadata.json` says of the exported model (`model`: the champion
    ensemble, the refit and the ONNX check, each where there is one)."""
    config = stored_config(study)
    champion, refitted = model["champion"], model["refit"]
    return {
        "study": study.study_name,
        "trial": best.number,
        "params": best.params,
        "ensemble": champion or None,  # the model is this ensemble, not the trial alone
        "objective": records.get(study, records.OBJECTIVE, None),
        "val_metrics": champion.get("val_metrics", best.user_attrs.get(records.VAL_METRICS)),
        "test_metrics": refitted["test_metrics"]
        if refitted
        else champion.get("test_metrics", test_metrics(study, best)),
        "refit": refitted,
        "onnx": model["onnx"],
        "dataset": records.get(study, records.FINGERPRINT),
        "dataset_ref": config.dataset,  # what --dataset was given
        "dataset_options": {k: v for k, v in config.dataset_options().items() if v},
        "baselines": records.get(study, records.BASELINES, None),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
        "files": _hashes(staging),
    }


def _exportable(study: Any, out: Path, formats: tuple[str, ...]) -> Any:
    """The study's best trial, where the formats, the folder and the study allow an
    export (else one line saying what to change)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(
            f"{Opt('format')}: unknown format(s) {unknown}; choose from {', '.join(FORMATS)}."
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"{Opt('out', out)}: exists and is not an empty folder; pick a new folder so nothing "
            "is overwritten."
        )
    done = completed(study)
    if not done:
        raise InputError(
            f"{Opt('study', study.study_name)}: no trial has completed yet; nothing to export."
        )
    best = champion(study)
    if best is None:
        raise InputError(
            f"{Opt('study', study.study_name)}: no complete trial meets the study's "
            f"{Opt('constraint')}; nothing to export (run more trials, or a study with looser "
            "bounds)."
        )
    if records.MODEL_URI not in best.user_attrs:
        raise InputError(
            f"{Opt('study', study.study_name)}: best trial #{best.number} has no logged model "
            "(study made by an older version); run more trials to log one."
        )
    return best


def _chosen_trial(study: Any, number: int, *, refit: bool) -> Any:
    """Trial `number` where it can be exported, else one line saying why not."""
    found = next((t for t in completed(study) if t.number == number), None)
    if found is None:
        raise InputError(
            f"{Opt('trial', number)}: study {study.study_name} has no complete trial "
            f"#{number}; `tuner status --study {study.study_name}` lists them."
        )
    if records.MODEL_URI not in found.user_attrs and not refit:
        raise InputError(
            f"{Opt('trial', number)}: trial #{number} logged no model (a trial logs one when "
            "it leads the study, or in a study run with --objectives); add --refit to train "
            "its configuration again on train+validation."
        )
    return found


def load_bundle(path: Path) -> Bundle:
    """Verify every file against its hash, then load the model in safe mode."""
    metadata_file = path / METADATA
    if not path.is_dir():
        raise InputError(
            f"{Opt('model', path)}: no such folder; pass a folder made by `tuner export`."
        )
    if not metadata_file.is_file():
        raise InputError(
            f"{Opt('model', path)}: not a tuner bundle (no {METADATA}); pass a folder made by "
            "`tuner export`."
        )
    try:
        metadata = json.loads(metadata_file.read_text())
        files = dict(metadata["files"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise InputError(f"{Opt('model', path)}: {METADATA} is not a bundle's metadata.") from None
    _check_listed(path, files)
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise InputError(f"{Opt('model', path)}: file {name} listed in {METADATA} is missing.")
        if _sha256(file) != digest:
            raise InputError(
                f"{Opt('model', path)}: {name} does not match its SHA-256 in {METADATA} (changed "
                "or corrupt); export the bundle again."
            )
    try:
        preprocessing = json.loads((path / PREPROCESSING).read_text())
        loaded = load_model(path / MODEL)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{Opt('model', path)}: {PREPROCESSING} is not valid JSON.") from None
    except (ValueError, TypeError, OSError) as e:  # safe mode refuses code (Lambda layers)
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{Opt('model', path)}: {MODEL} cannot be loaded safely ({reason})."
        ) from None
    if not isinstance(preprocessing, dict) or "task" not in preprocessing:
        raise InputError(f"{Opt('model', path)}: {PREPROCESSING} has no 'task'; export it again.")
    # Bundles exported before models were saved in the data's units get the scaler here.
    model = in_data_units(loaded, preprocessing)
    return Bundle(path=path, model=model, preprocessing=preprocessing, metadata=metadata)


def _check_listed(path: Path, files: dict[str, Any]) -> None:
    """The model and preprocessing must be listed with their hashes, and every
    listed file must lie inside the bundle (no `..`, no absolute paths)."""
    unlisted = [name for name in (MODEL, PREPROCESSING) if name not in files]
    if unlisted:
        raise InputError(
            f"{Opt('model', path)}: {METADATA} does not list {unlisted} with their SHA-256; "
            "export the bundle again."
        )
    root = path.resolve()
    for name in files:
        if Path(name).is_absolute() or not (root / name).resolve().is_relative_to(root):
            raise InputError(
                f"{Opt('model', path)}: {METADATA} lists {str(name)[:80]!r}, a path outside the "
                "bundle; export the bundle again."
            )


def _refit(study: Any, best: Any, data: Any, target: Path, tracking_uri: str) -> dict[str, Any]:
    """Retrain the best trial on train + validation; log and register the result."""
    epochs = int(
        best.user_attrs.get(records.BEST_EPOCH) or best.user_attrs.get(records.EPOCHS_RUN) or 1
    )
    params = hparams.TrialParams(best.params, max_seq_len=data.info.max_seq_len)
    windows = data.windows(params.window)
    seed = int(records.get(study, records.CONFIG).get("seed", 42)) + best.number
    in_rounds = ROUNDS_ATTR in best.user_attrs
    model = refit(params, windows, data, epochs=epochs, seed=seed, in_rounds=in_rounds)
    test = evaluate(model, windows["test"], data, batch_size=params.batch_size)
    original = test_metrics(study, best) or {}
    tracker = Tracker(
        tracking_uri, records.get(study, records.CONFIG).get("experiment") or study.study_name
    )
    run_id = tracker.start_parent(
        f"refit-trial-{best.number:04d}",
        {**best.params, "refit_epochs": epochs, "refit_of_trial": best.number},
        tags={
            "study": study.study_name,
            "role": "refit",
            "refit_of_run": best.user_attrs.get(records.MLFLOW_RUN_ID, ""),
        },
    )
    tracker.log_metrics(run_id, {f"test_{k}": v for k, v in test.items()})
    tracker.log_metrics(run_id, {f"original_test_{k}": v for k, v in original.items()})
    prep = data.preprocessing() | {"seq_len": params.window}
    saved = in_data_units(model, prep)
    model_uri = tracker.log_champion(
        run_id,
        saved,
        prep,
        example=request_example(data, params.window),
        registered_name=study.study_name,
        alias="refit",
    )
    tracker.end(run_id, "FINISHED")
    saved.save(target)
    return {
        "epochs": epochs,
        "trained_on": "train+validation",
        "test_metrics": test,
        "original_test_metrics": original,
        "mlflow_run_id": run_id,
        "model_uri": model_uri,
    }


def _in_data_units(file: Path, preprocessing: dict[str, Any]) -> None:
    """A model logged before models were saved in the data's units gets the scaler."""
    model = load_model(file)
    if not is_in_data_units(model) and get_task(preprocessing["task"]).standardised:
        in_data_units(model, preprocessing).save(file)


def _savedmodel(folder: Path) -> None:
    if keras.backend.backend() != "tensorflow":
        raise InputError(
            f"{Opt('format', 'savedmodel')} needs the TensorFlow backend; unset KERAS_BACKEND or "
            "set it to tensorflow."
        )
    model = load_model(folder / MODEL)
    model.export(str(folder / "savedmodel"), format="tf_saved_model", verbose=False)


def _onnx(folder: Path, sample: np.ndarray) -> dict[str, Any]:
    """Export to ONNX and compare onnxruntime's output with Keras' on test inputs."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError(
            f"{Opt('format', 'onnx')} needs the onnx extra (tf2onnx, onnxruntime); run `make "
            "install` or pip install 'lstm-tuner[onnx]'."
        ) from None
    model = load_model(folder / MODEL)
    expected = np.asarray(model.predict(sample, verbose=0))  # also builds the call graph
    model.export(str(folder / "model.onnx"), format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: sample})[0]
    return {
        "checked_on": f"{len(sample)} test inputs",
        "max_abs_diff": float(np.abs(got - expected).max()),
    }


def _mlflow_model(folder: Path, data: Any, preprocessing: dict[str, Any]) -> None:
    """The bundle's model as the same pyfunc the registry serves, with a signature and
    an input example in the raw form it reads."""
    import mlflow.pyfunc  # deferred: only --format mlflow needs the pyfunc machinery

    seq_len = int(preprocessing.get("seq_len") or data.info.max_seq_len)
    example = request_example(data, seq_len)
    signature, input_example = served_signature(load_model(folder / MODEL), preprocessing, example)
    files = {"keras_model": folder / MODEL, "preprocessing": folder / PREPROCESSING}
    mlflow.pyfunc.save_model(
        path=str(folder / "mlflow_model"),
        signature=signature,
        input_example=input_example,
        **pyfunc_parts(files),
    )


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("lstm-tuner", "keras", "tensorflow", "jax", "numpy", "optuna", "mlflow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    out["keras_backend"] = keras.backend.backend()
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != METADATA
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
