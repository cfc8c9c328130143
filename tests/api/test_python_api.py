"""The Python API as the README shows it: a DataFrame and a space function in,
the best trial, an exported bundle and its predictions out."""

from __future__ import annotations

import linecache
import os
import re
import subprocess
import sys

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import tuner
from tests.conftest import ROOT, Stores


def small_space(hp, data):
    """One small LSTM: the window and the width are tuned."""
    hp.Choice("seq_len", [8, 16])
    hp.Choice("units_0", [8, 16])


def _load_frame() -> pd.DataFrame:
    steps = np.arange(600)
    rng = np.random.default_rng(0)
    load = 10 + np.sin(steps * 2 * np.pi / 24) + 0.1 * rng.standard_normal(len(steps))
    return pd.DataFrame(
        {"time": pd.date_range("2024-01-01", periods=len(steps), freq="h"), "load": load}
    )


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\nimport pandas as pd\nimport tuner\n") + len("```python\n")
    code = readme[start : readme.index("```", start)]
    assert "trials=20," in code and "max_epochs=10," in code
    # Shrunk (two trials of two epochs), not changed.
    return code.replace("trials=20,", "trials=2,").replace("max_epochs=10,", "max_epochs=2,")


@pytest.mark.slow
def test_readme_python_example_runs(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example, as written (two trials of two epochs), on a generated
    hourly `load.csv` in the working folder; the stores come from the environment."""
    _load_frame().to_csv("load.csv", index=False)
    monkeypatch.setenv("TUNER_STORAGE", stores.storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores.tracking)
    code, name = _readme_example(), "<README.md example>"
    # Registered as IPython registers a cell, so the space function's source is readable.
    linecache.cache[name] = (len(code), None, code.splitlines(keepends=True), name)
    ns: dict = {}
    exec(compile(code, name, "exec"), ns)

    result, frame, model = ns["result"], ns["frame"], ns["model"]
    best = result.best
    assert best["trial"] == result.best_trial.number
    assert set(best["params"]) == {"seq_len", "units_0"}
    assert best["val"]["mse"] == pytest.approx(result.best_trial.value)
    assert best["test"]["mse"] > 0  # scored on the test split once, for the best trial
    trials = result.trials()
    assert len(trials) == 2 and set(trials["state"]) <= {"complete", "pruned"}
    # Flat as Optuna's trials_dataframe: a column per parameter and per attribute.
    assert {"params_seq_len", "params_units_0", "user_attrs_epochs_run"} <= set(trials.columns)
    assert set(trials["params_seq_len"]) <= {24, 48} and "params" not in trials.columns
    assert "persistence_test" in result.baselines
    assert ns["path"] == (stores.root / "exports" / "load").resolve() or ns["path"].is_dir()

    history = frame.iloc[:-4]
    forecast = model.predict(history)
    assert list(forecast.columns) == ["time", "step", "load"] and len(forecast) == 4
    assert forecast["step"].tolist() == [1, 2, 3, 4]
    assert forecast["time"].iloc[0] == frame["time"].iloc[-4]
    assert np.abs(forecast["load"] - frame["load"].iloc[-4:].to_numpy()).max() < 5
    in_memory = result.best_model()  # the same champion, nothing written
    assert in_memory.model.count_params() == model.model.count_params()
    pd.testing.assert_frame_equal(in_memory.predict(history), forecast, rtol=1e-5)

    # The frame and the space were staged as files the workers and the fingerprint read.
    staged = stores.root / "studies" / "staged" / "load"
    assert (staged / "dataset.parquet").is_file() and (staged / "space.py").is_file()
    # Resuming with the same frame runs on; another frame under the same name is refused.
    again = tuner.tune(frame, space=ns["space"], study="load", target="load",
                       time_col="time", horizon=4, trials=2, max_epochs=2)  # fmt: skip
    assert len(again.trials()) == 2
    with pytest.raises(tuner.InputError, match="study=load: was tuned on a different dataset"):
        tuner.tune(frame.iloc[:500], space=ns["space"], study="load", target="load")


@pytest.mark.slow
def test_readme_example_runs_as_a_script_without_a_main_guard(stores: Stores) -> None:
    """Saved as a file and run with `python example.py`, as a user would: the spawned
    workers must not import the script again (no `if __name__ == "__main__":`
    guard), which used to start a study in every worker and kill them all."""
    _load_frame().to_csv(stores.root / "load.csv", index=False)
    script = stores.root / "example.py"
    script.write_text(_readme_example() + '\nprint("best trial", result.best["trial"])\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TUNER_STORAGE": stores.storage,
           "MLFLOW_TRACKING_URI": stores.tracking}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(script)], cwd=stores.root, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "worker processes died" not in done.stderr
    assert re.search(r"^best trial [01]$", done.stdout, re.MULTILINE), done.stdout
    study = optuna.load_study(study_name="load", storage=stores.storage)
    assert len(study.trials) == 2  # one study, not one more per worker
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


@pytest.mark.slow
def test_arrays_and_a_named_space_function(stores: Stores) -> None:
    """Classification from NumPy arrays with a space function of another name."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 60)
    x = rng.standard_normal((120, 10, 2)).astype(np.float32) + y[:, None, None]
    result = tuner.tune(
        (x, y), space=small_classifier, study="arrays", trials=2, max_epochs=2,
        storage=stores.storage, tracking_uri=stores.tracking,
    )  # fmt: skip
    assert result.best["val"]["accuracy"] > 0.5
    model = tuner.load_bundle(result.export(stores.root / "bundle"))
    out = model.predict(x[:5])
    assert len(out) == 5 and set(out.columns) >= {"label"}


def small_classifier(hp, data):
    hp.Choice("units_0", [8])
    hp.Fixed("batch_size", 16)


def test_input_errors_are_value_errors_worded_for_keywords(stores: Stores) -> None:
    with pytest.raises(ValueError, match=r"^max_epochs must be at least 1, but got 0\.$"):
        tuner.tune("co2", max_epochs=0, storage=stores.storage)
    with pytest.raises(ValueError, match=r"^trials must be at least 1, but got 0\.$"):
        tuner.tune(_load_frame(), space=small_space, study="f", trials=0, storage=stores.storage)
    with pytest.raises(tuner.InputError, match="max_epoch: not an option of tune"):
        tuner.tune("co2", max_epoch=3)
    with pytest.raises(tuner.InputError, match="function defined with def"):
        tuner.tune("co2", space=lambda hp, data: None)
    with pytest.raises(tuner.InputError, match="pandas DataFrame or \\(X, y\\) arrays"):
        tuner.tune(42)  # type: ignore[arg-type]
    assert not (stores.root / "studies" / "staged").exists()  # nothing staged for bad input


def test_readme_example_has_the_calls_it_documents() -> None:
    code = _readme_example()
    for call in ("tuner.tune(", "result.best", "result.export(", "tuner.load_bundle(", ".predict("):
        assert call in code, call
