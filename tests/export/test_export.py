"""Export, predict and serve: the best model of a tiny study of each task, used
outside the study with no surprises."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tuner
from tests.conftest import ROOT, Finished, free_port, made_once
from tuner.cli.main import main
from tuner.tracking.models import download_model_file

pytestmark = pytest.mark.slow


TASK_DATASETS = {"forecasting": "co2", "classification": "japanese_vowels", "char_lm": "alice"}
METRIC = {"co2": "mse", "japanese_vowels": "log_loss", "alice": "bpc"}

REPRODUCE = """
import json, sys
from pathlib import Path
from tuner import load_bundle
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.model.portable import raw_inputs, trained_part
import numpy as np

bundle = load_bundle(Path(sys.argv[1]))
meta = bundle.metadata
options = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["dataset_options"].items()}
data = load_dataset(resolve_dataset(meta["dataset_ref"], **options))
test = data.windows(bundle.seq_len)["test"]
# The saved model reads the data's units; its trained part, the standardised windows.
scaled = trained_part(bundle.model).predict(test.x, batch_size=256, verbose=0)
metrics = data.metrics(test.y, scaled)
if data.spec.task != "char_lm":
    raw = bundle.model.predict(raw_inputs(test.x, bundle.preprocessing), batch_size=256, verbose=0)
    if data.spec.task == "forecasting":
        scaled = data.to_original_units(scaled)
    metrics["raw_max_rel_diff"] = float(np.abs(raw - scaled).max() / np.abs(scaled).max())
print(json.dumps(metrics))
"""


def _export(study: Finished, out: Path, formats: str = "keras") -> Path:
    code = main(
        [
            "export",
            "--study",
            study.summary["study"],
            "--out",
            str(out),
            "--format",
            formats,
            "--storage",
            study.stores.storage,
            "--tracking-uri",
            study.stores.tracking,
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def bundles(
    finished_studies: Callable[[str], Finished], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each task's champion exported once per test run (shared by the xdist workers)."""

    def build(folder: Path) -> None:
        for name in TASK_DATASETS.values():
            formats = "keras,savedmodel,mlflow,onnx" if name == "co2" else "keras"
            _export(finished_studies(name), folder / name, formats)

    folder = made_once(tmp_path_factory, "bundles", build)
    return {name: folder / name for name in TASK_DATASETS.values()}


def _co2() -> pd.DataFrame:
    """The built-in CO2 series with its missing weeks interpolated, as in its definition."""
    frame = pd.read_csv(ROOT / "datasets" / "mauna_loa_co2_weekly.csv")
    return frame.assign(co2=frame["co2"].interpolate())


def _predict(bundle: Path, source: Path, out: Path) -> int:
    return main(["predict", "--model", str(bundle), "--input", str(source), "--out", str(out)])


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("name", list(TASK_DATASETS.values()))
def test_bundle_reproduces_the_test_metric_in_a_fresh_process(
    name: str, bundles: dict[str, Path], finished_studies: Callable[[str], Finished]
) -> None:
    bundle = bundles[name]
    meta = json.loads((bundle / "metadata.json").read_text())
    summary = finished_studies(name).summary
    assert meta["trial"] == summary["best_trial"] and meta["study"] == name
    assert meta["test_metrics"] == summary["best_test"]
    assert {"model.keras", "preprocessing.json"} <= set(meta["files"])
    assert meta["versions"]["keras"] and meta["dataset"]["sha256"] == summary["dataset"]["sha256"]
    done = _python("-c", REPRODUCE, str(bundle))
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout.strip().splitlines()[-1])
    metric = METRIC[name]
    assert again[metric] == pytest.approx(meta["test_metrics"][metric], rel=1e-6)
    assert again.get("raw_max_rel_diff", 0.0) < 1e-5  # the same model in the data's units


def test_forecast_bundle_formats_and_predict_in_original_units(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = bundles["co2"]
    assert (bundle / "savedmodel" / "saved_model.pb").is_file()
    assert (bundle / "mlflow_model" / "MLmodel").is_file()
    onnx = json.loads((bundle / "metadata.json").read_text())["onnx"]
    assert onnx["max_abs_diff"] < 1e-4, onnx  # onnxruntime against Keras on test inputs
    history = _co2().tail(150)
    history.to_csv(tmp_path / "history.csv", index=False)
    assert _predict(bundle, tmp_path / "history.csv", tmp_path / "forecast.csv") == 0
    forecast = pd.read_csv(tmp_path / "forecast.csv")
    assert len(forecast) == 13 and list(forecast.columns) == ["date", "step", "co2"]
    assert forecast["date"].iloc[0] == "2002-01-05"  # one week after the last row
    assert forecast["co2"].between(360, 380).all()  # ppm, near the last readings


def test_classification_predict_gives_labels_probabilities_and_the_test_accuracy(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    arrays = np.load(ROOT / "datasets" / "japanese_vowels.npz")
    test = arrays["split"] == 2
    np.savez(tmp_path / "test.npz", X=arrays["X"][test], y=arrays["y"][test])
    out = tmp_path / "labels.csv"
    assert _predict(bundles["japanese_vowels"], tmp_path / "test.npz", out) == 0
    labels = pd.read_csv(out, dtype={"label": str, "true_label": str})
    assert len(labels) == 370
    probabilities = labels[[f"p_{c}" for c in "123456789"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    meta = json.loads((bundles["japanese_vowels"] / "metadata.json").read_text())
    accuracy = float((labels["label"] == labels["true_label"]).mean())
    assert accuracy == pytest.approx(meta["test_metrics"]["accuracy"], abs=1e-9)


def test_character_model_continues_a_prompt(
    bundles: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", "--model", str(bundles["alice"]), "--prompt", "Alice was ", "--length", "40"]
    assert main(argv) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("Alice was ") and len(text) == len("Alice was ") + 40
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n") == text  # seeded: the same text again


@contextlib.contextmanager
def _served(model_uri: str, tracking_uri: str) -> Iterator[str]:
    """`mlflow models serve` of a model on 127.0.0.1; yields its invocations URL."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": _with_bin(mlflow.parent)}
    server = subprocess.Popen(
        [str(mlflow), "models", "serve", "-m", model_uri,
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        # mlflow starts uvicorn by name: the environment's bin folder must be on PATH.
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        _post_when_up(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def _post(url: str, payload: dict) -> tuple[int, dict]:
    body = json.dumps(payload).encode()  # NaN stays NaN: MLflow reads it back
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as e:
        return e.code, dict(json.loads(e.read()))


def test_the_registry_champion_and_the_bundle_serve_raw_data_like_tuner_predict(
    bundles: dict[str, Path], finished_studies: Callable[[str], Finished], tmp_path: Path
) -> None:
    """`mlflow models serve -m models:/<study>@champion` (and the bundle's
    `mlflow_model/`) answers raw requests exactly as `tuner predict` does; a request
    it cannot answer gets 400 with the reason in `message`."""
    history = _co2().tail(120)
    history.to_csv(tmp_path / "history.csv", index=False)
    assert _predict(bundles["co2"], tmp_path / "history.csv", tmp_path / "forecast.csv") == 0
    expected = pd.read_csv(tmp_path / "forecast.csv")
    rows = {"dataframe_split": json.loads(history.to_json(orient="split", date_format="iso"))}
    tracking = finished_studies("co2").stores.tracking
    for model_uri in ("models:/co2@champion", str(bundles["co2"] / "mlflow_model")):
        with _served(model_uri, tracking) as url:
            status, answer = _post(url, rows)
            assert status == 200, answer
            served = pd.DataFrame(answer["predictions"])
            assert list(served["date"].str[:10]) == list(expected["date"])
            np.testing.assert_allclose(served["co2"], expected["co2"], rtol=1e-6)
            # Without the time column: the same numbers, no dates.
            status, answer = _post(url, {"dataframe_split": {
                "columns": ["co2"], "data": [[v] for v in history["co2"].tolist()]}})  # fmt: skip
            assert status == 200, answer
            np.testing.assert_allclose(
                pd.DataFrame(answer["predictions"])["co2"], expected["co2"], rtol=1e-6
            )
            short = {"columns": ["co2"], "data": [[v] for v in history["co2"].tolist()[:5]]}
            status, answer = _post(url, {"dataframe_split": short})
            assert status == 400 and answer["message"].startswith("request: too little history")
            assert "\n" not in answer["message"], answer  # one line, not the request echoed
            renamed = {"columns": ["ppm"], "data": short["data"]}
            status, answer = _post(url, {"dataframe_split": renamed})
            assert status == 400, answer  # the model's own line, not MLflow's schema error
            # (MLflow drops the columns its signature does not name before the model reads)
            expected_line = "request: column(s) ['co2'] missing; the model reads ['co2']."
            assert answer["message"] == expected_line, answer

    # Classification: raw sequences (NaN after each one's end) -> labels and probabilities.
    arrays = np.load(ROOT / "datasets" / "japanese_vowels.npz")
    test = arrays["X"][arrays["split"] == 2][:12]
    np.savez(tmp_path / "seq.npz", X=test)
    assert _predict(bundles["japanese_vowels"], tmp_path / "seq.npz", tmp_path / "l.csv") == 0
    expected = pd.read_csv(tmp_path / "l.csv", dtype={"label": str})
    tracking = finished_studies("japanese_vowels").stores.tracking
    with _served("models:/japanese_vowels@champion", tracking) as url:
        status, answer = _post(url, {"inputs": test.tolist()})
        assert status == 200, answer
        served = pd.DataFrame(answer["predictions"])
        assert list(served["label"].astype(str)) == list(expected["label"])
        columns = [c for c in expected.columns if c.startswith("p_")]
        np.testing.assert_allclose(served[columns], expected[columns], rtol=1e-5, atol=1e-6)
        status, answer = _post(url, {"inputs": test[:, :, :5].tolist()})
        assert status == 400, answer  # the model's own one line: what it reads, what came
        assert answer["message"] == (
            f"request: X must be shaped (samples, up to {test.shape[1]} steps, "
            f"{test.shape[2]} features) like the training data, but has shape (12, "
            f"{test.shape[1]}, 5)."
        ), answer


def _with_bin(folder: Path) -> str:
    return os.pathsep.join([str(folder), os.environ["PATH"]])


def _post_when_up(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url.replace("invocations", "ping"), timeout=10):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"mlflow models serve did not answer: {server.stderr}"
                ) from None
            time.sleep(1)


def _tampered(bundle: Path, folder: Path, change: str) -> Path:
    """A copy of `bundle` with its metadata or files changed as an attacker would."""
    import hashlib

    copy = folder / "copy"
    subprocess.run(["cp", "-r", str(bundle), str(copy)], check=True)
    meta = json.loads((copy / "metadata.json").read_text())
    if change == "unlisted":
        meta["files"] = {}
    elif change == "outside":
        meta["files"]["../history.csv"] = "0" * 64
    elif change == "bad json":
        (copy / "preprocessing.json").write_text("{not json")
    elif change == "lambda":
        import keras

        x = keras.Input((3,))
        keras.Model(x, keras.layers.Lambda(lambda v: v * 2)(x)).save(copy / "model.keras")
    for name in ("model.keras", "preprocessing.json"):
        if name in meta["files"]:
            meta["files"][name] = hashlib.sha256((copy / name).read_bytes()).hexdigest()
    (copy / "metadata.json").write_text(json.dumps(meta))
    return copy


BAD = [
    ("missing folder", lambda b, t: ["--model", str(t / "nope")], "no such folder"),
    ("files unlisted", "unlisted", "does not list ['model.keras', 'preprocessing.json']"),
    ("path outside", "outside", "lists '../history.csv', a path outside the bundle"),
    ("bad preprocessing", "bad json", "preprocessing.json is not valid JSON"),
    ("lambda layer", "lambda", "model.keras cannot be loaded safely"),
    ("foreign folder", lambda b, t: ["--model", str(t)], "not a tuner bundle"),
    ("tampered model", "tamper", "model.keras does not match its SHA-256"),
    ("wrong columns", "columns", "column(s) ['co2'] missing"),
    ("too little history", "short", "too little history: 10 rows"),
    ("unparsable last timestamp", "last time", "'yesterday') is not a timestamp"),
    ("NaN in the window", "nan", "at row 198 (line 199); values must be finite: the model reads"),
]


@pytest.mark.parametrize(("what", "make", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_bundle_or_input_exits_2(
    what: str,
    make: object,
    expected: str,
    bundles: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = bundles["co2"]
    history = tmp_path / "history.csv"
    if callable(make):
        args = make(bundle, tmp_path)
    else:
        if make == "tamper":
            copy = tmp_path / "copy"
            subprocess.run(["cp", "-r", str(bundle), str(copy)], check=True)
            with (copy / "model.keras").open("ab") as f:
                f.write(b"x")
            bundle = copy
        elif make in ("unlisted", "outside", "bad json", "lambda"):
            bundle = _tampered(bundle, tmp_path, str(make))
        frame = _co2()
        if make == "columns":
            frame = frame.rename(columns={"co2": "ppm"})
        if make == "last time":
            frame = frame.astype({"date": str})
            frame.loc[frame.index[-1], "date"] = "yesterday"
        frame = frame.tail(10 if make == "short" else 200)
        if make == "nan":  # named by its line in the file, not its row in the window
            frame.loc[frame.index[197], "co2"] = np.nan
        frame.to_csv(history, index=False)
        args = ["--model", str(bundle), "--input", str(history)]
    code = main(["predict", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert expected in err[0]


def _sequences(change: str) -> dict[str, np.ndarray]:
    x = np.load(ROOT / "datasets" / "japanese_vowels.npz")["X"][:5]
    lengths = np.full(5, 20)
    if change == "none":
        x = x[:0]
    elif change == "bool":
        x = x > 0
    elif change == "complex":
        x = x * 1j
    elif change == "strings":
        x = x.astype(str)
    elif change == "nan":
        x = x.copy()
        x[1, 2, 0] = np.nan
    else:
        lengths = {"short": np.ones(3, int), "past": np.full(5, 40), "fraction": np.full(5, 2.5)}[
            change
        ]
    return {"X": x, "lengths": lengths}


BAD_SEQUENCES = [
    ("no sequences", "none", "has shape (0, 29, 12): it needs at least one sequence"),
    ("boolean X", "bool", "X must be a numeric array"),
    ("complex X", "complex", "X holds complex numbers"),
    ("numbers as strings", "strings", "X must be a numeric array"),
    ("NaN inside", "nan", "the first at sequence 1, step 2, feature 0"),
    ("lengths for 3 of 5", "short", "lengths must hold one whole number in [1, 29] per sequence"),
    ("lengths past the end", "past", "(5 of them), but has shape (5,) and range [40, 40]"),
    ("fractional lengths", "fraction", "but has shape (5,) and dtype float64"),
]


@pytest.mark.parametrize(("change", "expected"), [b[1:] for b in BAD_SEQUENCES],
                         ids=[b[0] for b in BAD_SEQUENCES])  # fmt: skip
def test_bad_sequences_get_the_training_readers_line(
    change: str,
    expected: str,
    bundles: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tuner predict` checks sequences with the training reader's checks."""
    path = tmp_path / "bad.npz"
    np.savez(path, **_sequences(change))
    code = main(["predict", "--model", str(bundles["japanese_vowels"]), "--input", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and len(err[0]) < 300, err
    assert expected in err[0] and str(path) in err[0], err


def test_unknown_classes_and_bad_exports_exit_2(
    bundles: dict[str, Path],
    finished_studies: Callable[[str], Finished],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arrays = np.load(ROOT / "datasets" / "japanese_vowels.npz")
    np.savez(tmp_path / "odd.npz", X=arrays["X"][:5], y=np.array(["1", "2", "3", "4", "ten"]))
    argv = [
        "predict",
        "--model",
        str(bundles["japanese_vowels"]),
        "--input",
        str(tmp_path / "odd.npz"),
    ]
    assert main(argv) == 2
    assert "y holds class(es) ['ten'] the model does not know" in capsys.readouterr().err
    study = finished_studies("co2")
    common = ["--storage", study.stores.storage, "--tracking-uri", study.stores.tracking]
    assert main(["export", "--study", "co2", "--out", str(bundles["co2"]), *common]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (
        main(
            ["export", "--study", "co2", "--out", str(tmp_path / "x"), "--format", "onnx2", *common]
        )
        == 2
    )
    assert "unknown format(s) ['onnx2']" in capsys.readouterr().err


def test_refit_on_train_and_validation_is_recorded_beside_the_original(
    finished_studies: Callable[[str], Finished], tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    study = finished_studies("japanese_vowels")
    out = tmp_path / "refit"
    common = ["--storage", study.stores.storage, "--tracking-uri", study.stores.tracking]
    assert (
        main(["export", "--study", "japanese_vowels", "--out", str(out), "--refit", *common]) == 0
    )
    meta = json.loads((out / "metadata.json").read_text())
    refit = meta["refit"]
    assert refit["trained_on"] == "train+validation" and refit["epochs"] >= 1
    assert refit["original_test_metrics"] == study.summary["best_test"]
    assert meta["test_metrics"] == refit["test_metrics"]
    client = MlflowClient(study.stores.tracking)
    run = client.get_run(refit["mlflow_run_id"])
    assert run.data.tags["role"] == "refit"
    assert run.data.metrics["test_log_loss"] == pytest.approx(refit["test_metrics"]["log_loss"])
    assert run.data.metrics["original_test_log_loss"] == pytest.approx(
        study.summary["best_test"]["log_loss"]
    )
    version = client.get_model_version_by_alias("japanese_vowels", "refit")
    assert version.run_id == refit["mlflow_run_id"]
    done = _python("-c", REPRODUCE, str(out))
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout.strip().splitlines()[-1])
    assert again["log_loss"] == pytest.approx(refit["test_metrics"]["log_loss"], rel=1e-6)


PORTABLE = """
import json, sys
from pathlib import Path
import numpy as np
import keras

folder = Path(sys.argv[1])
model = keras.saving.load_model(sys.argv[2], safe_mode=True)
x = np.load(folder / "x.npy")
if model.inputs[0].shape[1] is not None:  # a declared window: a wrong one is refused,
    try:  # with Keras' own shape error, and the model keeps working after it
        model(np.concatenate([x, x[:, :1]], axis=1))
    except ValueError as e:
        assert "expected shape" in str(e), e
    else:
        raise AssertionError("a window one step too long was accepted")
print(json.dumps(model.predict(x, verbose=0).tolist()))
for name in list(sys.modules):
    assert not name.startswith("tuner"), name
"""


@pytest.fixture(scope="module")
def plain_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A separate virtual environment with only Keras and JAX (the versions of this
    one) and no project package: where a user runs an exported model."""
    from importlib.metadata import version

    venv = tmp_path_factory.mktemp("plain-keras") / "venv"
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = [f"{p}=={version(p)}" for p in ("keras", "jax", "jaxlib", "numpy")]
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--python", str(python), *pins], check=True
    )
    # Run from outside the repository, as the predictions below are: `python -c`
    # puts the working folder first on sys.path.
    probe = subprocess.run(
        [str(python), "-c", "import tuner"], capture_output=True, text=True, cwd=venv.parent
    )
    assert probe.returncode != 0, "the project must not be importable there"
    assert "No module named 'tuner'" in probe.stderr, probe.stderr[-500:]
    return python


def _plain_predict(python: Path, model: Path, x: np.ndarray, folder: Path) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "x.npy", x)
    done = subprocess.run(
        [str(python), "-c", PORTABLE, str(folder), str(model)],
        capture_output=True,
        text=True,
        env={"KERAS_BACKEND": "jax", "PATH": os.environ["PATH"], "HOME": str(folder)},
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.asarray(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)


def test_exported_and_champion_models_run_in_plain_keras_in_the_data_units(
    bundles: dict[str, Path],
    plain_keras: Path,
    finished_studies: Callable[[str], Finished],
    tmp_path: Path,
) -> None:
    """Each task's exported `model.keras`, and the champion's file from the MLflow
    registry, loaded where only Keras and JAX are installed: the same answers as
    `tuner predict`, from raw values in the data's own units."""
    # Forecasting: the last window of history in ppm -> `tuner predict`'s forecast.
    history = _co2().tail(150)
    history.to_csv(tmp_path / "history.csv", index=False)
    assert _predict(bundles["co2"], tmp_path / "history.csv", tmp_path / "forecast.csv") == 0
    expected = pd.read_csv(tmp_path / "forecast.csv")["co2"].to_numpy(np.float32)
    seq_len = json.loads((bundles["co2"] / "preprocessing.json").read_text())["seq_len"]
    window = history["co2"].to_numpy(np.float32)[-seq_len:, None][None]
    got = _plain_predict(plain_keras, bundles["co2"] / "model.keras", window, tmp_path / "f")
    np.testing.assert_allclose(got[0, :, 0], expected, rtol=1e-5)

    stores = finished_studies("co2").stores
    champion = tmp_path / "champion.keras"
    download_model_file("models:/co2@champion", champion, stores.tracking)
    got = _plain_predict(plain_keras, champion, window, tmp_path / "c")
    np.testing.assert_allclose(got[0, :, 0], expected, rtol=1e-5)

    # Classification: raw test sequences padded with the training mean -> probabilities.
    arrays = np.load(ROOT / "datasets" / "japanese_vowels.npz")
    test = arrays["X"][arrays["split"] == 2][:20]  # NaN after each sequence's end
    np.savez(tmp_path / "seq.npz", X=test)
    out = tmp_path / "labels.csv"
    assert _predict(bundles["japanese_vowels"], tmp_path / "seq.npz", out) == 0
    probabilities = pd.read_csv(out).filter(like="p_").to_numpy(np.float32)
    prep = json.loads((bundles["japanese_vowels"] / "preprocessing.json").read_text())
    mean = np.asarray(prep["mean"], np.float32)
    padded = np.broadcast_to(mean, (len(test), prep["steps"], prep["n_features"])).copy()
    steps = test.shape[1]
    padded[:, :steps] = np.where(np.isnan(test), mean, test)
    got = _plain_predict(
        plain_keras, bundles["japanese_vowels"] / "model.keras", padded, tmp_path / "s"
    )
    np.testing.assert_allclose(got, probabilities, rtol=1e-5, atol=1e-6)

    # Character model: token ids in, the same next-character logits as in this process.
    bundle = tuner.load_bundle(bundles["alice"])
    ids = np.asarray([[bundle.preprocessing["vocab"].index(c) for c in "Alice was "]])
    here = np.asarray(bundle.model.predict(ids, verbose=0))
    got = _plain_predict(plain_keras, bundles["alice"] / "model.keras", ids, tmp_path / "t")
    np.testing.assert_allclose(got, here, rtol=1e-5, atol=1e-5)
