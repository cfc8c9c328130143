"""The user's own data: tables, sequences and texts, the options that describe
them, the ETTh1 standard protocol, and windows that stay views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.data.sequences import PAD, SequenceData
from tuner.data.series import SeriesData
from tuner.data.text import UNSCORED, TextData
from tuner.data.windows import make_windows

# Reference data is read where it lies, ../shared/datasets/ beside the repository
# (never copied into it); the tests skip with the reason where it is absent.
ROOT = Path(__file__).resolve().parents[2]
ETTH1 = (ROOT / "../shared/datasets/ETTh1.csv").resolve()
ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
ETT_BORDERS = (8640.0, 11520.0, 14400.0)
needs_etth1 = pytest.mark.skipif(
    not ETTH1.is_file(), reason=f"reference data {ETTH1} is absent (shared datasets folder)"
)


def _series(path: Path, **options: object) -> SeriesData:
    data = load_dataset(resolve_dataset(str(path), **options))
    assert isinstance(data, SeriesData)
    return data


@needs_etth1
def test_etth1_standard_protocol_univariate() -> None:
    data = _series(ETTH1, target=("OT",), time_col="date", split=ETT_BORDERS, horizon=24)
    assert data.borders == (8640, 11520, 14400)
    assert data.columns == ("OT",)
    windows = data.windows(96)
    assert len(windows["train"].x) == 8640 - 96 - 24 + 1
    assert len(windows["val"].x) == 11520 - 8640 - 24 + 1
    assert len(windows["test"].x) == 2857
    train = data.scaled[:8640]
    assert abs(float(train.mean())) < 1e-4 and float(train.std()) == pytest.approx(1, abs=1e-3)
    persistence = data.baselines()["persistence_test"]["mse"]
    assert persistence == pytest.approx(0.0343, abs=5e-5)


@needs_etth1
def test_etth1_standard_protocol_multivariate() -> None:
    data = _series(
        ETTH1,
        target=ETT_COLUMNS,
        time_col="date",
        split=ETT_BORDERS,
        horizon=24,
        seasonal_period=24,
    )
    assert data.info.n_targets == 7
    assert data.windows(48)["test"].y.shape == (2857, 24, 7)
    assert data.baselines()["seasonal_naive_test"]["mse"] == pytest.approx(0.424, abs=5e-4)


def test_csv_with_time_column_covariates_and_fill(tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    t = np.arange(200)
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=200, freq="h"),
            "load": np.sin(t / 5),
            "temp": np.cos(t / 7),
            "ignored": "x",
        }
    )
    frame.loc[10, "load"] = np.nan
    frame.to_csv(path, index=False)
    data = _series(
        path, target=("load",), covariates=("temp",), time_col="when", horizon=3, fill="interpolate"
    )
    assert data.columns == ("load", "temp")
    assert data.info.n_features == 2 and data.info.n_targets == 1
    assert data.borders == (140, 170, 200)
    w = data.windows(12)["train"]
    assert w.x.shape[1:] == (12, 2) and w.y.shape[1:] == (3, 1)
    expected = (np.sin(9 / 5) + np.sin(11 / 5)) / 2  # row 10 interpolated
    assert data.to_original_units(data.scaled[10:11, :1])[0, 0] == pytest.approx(expected, rel=1e-4)


def test_parquet_and_yaml_definition_with_row_borders(tmp_path: Path) -> None:
    pd.DataFrame({"y": np.arange(100.0), "x": np.arange(100.0) ** 0.5}).to_parquet(
        tmp_path / "s.parquet"
    )
    (tmp_path / "s.yaml").write_text(
        "file: s.parquet\ntarget: y\ncovariates: [x]\nhorizon: 2\nsplit: [60, 80, 100]\n"
    )
    data = _series(tmp_path / "s.yaml")
    assert data.spec.name == "s" and data.borders == (60, 80, 100)
    assert data.spec.covariates == ("x",)
    overridden = _series(tmp_path / "s.yaml", split=(0.5, 0.25, 0.25))
    assert overridden.borders == (50, 75, 100)


def test_npz_variable_length_sequences_are_padded_and_masked(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 10, 3)).astype(np.float32)
    lengths = rng.integers(4, 11, size=60)
    for i, n in enumerate(lengths):
        x[i, n:] = np.nan
    y = np.array(["a", "b", "c"] * 20)
    np.savez(tmp_path / "seq.npz", X=x, y=y)
    data = load_dataset(resolve_dataset(str(tmp_path / "seq.npz")))
    assert isinstance(data, SequenceData)
    info = data.info
    assert info.task == "classification" and info.n_classes == 3 and info.variable_length
    assert data.lengths.tolist() == lengths.tolist()
    assert np.all(data.x[0, lengths[0] :] == PAD)
    sizes = [len(data.parts[s]) for s in ("train", "val", "test")]
    assert sum(sizes) == 60 and sizes[0] == 42
    for part in data.parts.values():  # stratified: every class in every split
        assert set(data.labels[part]) == {0, 1, 2}


def test_text_is_encoded_with_the_training_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("abcab" * 80 + "xyz" * 20, encoding="utf-8")
    data = load_dataset(resolve_dataset(str(path), split=(0.8, 0.1, 0.1)))
    assert isinstance(data, TextData)
    assert data.vocab == ("\x00", "a", "b", "c")  # x, y, z only appear after training
    windows = data.windows(10)
    assert windows["train"].x.shape[1] == 10
    assert windows["train"].y[0].tolist() == data.codes[1:11].tolist()
    scored = windows["test"].y[windows["test"].y != UNSCORED]
    assert (scored == 0).all()  # unknown characters map to index 0
    assert data.baselines()["unigram_val"]["bpc"] > 0


def test_held_out_text_is_scored_once_each_with_half_a_window_of_context(
    tmp_path: Path,
) -> None:
    """Training windows lie side by side; held-out windows overlap by half a window
    and each held-out character is scored in exactly one of them: the first
    window's from the split's start, every later one with at least half a window
    of text before it in its window."""
    path = tmp_path / "t.txt"
    path.write_text("".join(chr(97 + (i * 7) % 26) for i in range(2000)), encoding="utf-8")
    data = load_dataset(resolve_dataset(str(path), split=(0.8, 0.1, 0.1)))
    assert isinstance(data, TextData)
    seq_len = 16
    windows = data.windows(seq_len)
    train = windows["train"]
    assert (train.x[1:, 0] == train.y[:-1, -1]).all()  # side by side, none unscored
    assert (train.y != UNSCORED).all()
    for split, start in (("val", data.borders[0]), ("test", data.borders[1])):
        x, y = windows[split].x, windows[split].y
        stride = seq_len - seq_len // 2
        scored_at: list[int] = []
        for i in range(len(x)):
            origin = start + i * stride  # the window's first character in the text
            assert x[i].tolist() == data.codes[origin : origin + seq_len].tolist()
            for step in np.flatnonzero(y[i] != UNSCORED):
                assert y[i, step] == data.codes[origin + step + 1]
                assert i == 0 or step >= seq_len // 2  # context before it in its window
                scored_at.append(origin + step + 1)
        assert scored_at == list(range(start + 1, start + 1 + len(scored_at)))  # once each
        assert len(scored_at) > (data.borders[1] - data.borders[0]) - 2 * seq_len


def test_text_metrics_skip_unscored_targets() -> None:
    """Bits per character and accuracy are over the scored targets only; the
    UNSCORED ones (context) change nothing, whatever the model predicts there."""
    rng = np.random.default_rng(0)
    data = TextData.__new__(TextData)
    y = rng.integers(0, 5, (3, 8))
    logits = rng.normal(size=(3, 8, 5))
    masked = y.copy()
    masked[1:, :4] = UNSCORED
    noisy = logits.copy()
    noisy[1:, :4] = rng.normal(size=(2, 4, 5)) * 100
    scored = np.concatenate([logits[0], logits[1:, 4:].reshape(-1, 5)])
    targets = np.concatenate([y[0], y[1:, 4:].reshape(-1)])
    expected = data.metrics(targets[:, None], scored[:, None, :])
    assert data.metrics(masked, noisy) == pytest.approx(expected)
    assert data.metrics(masked, logits) != data.metrics(y, logits)


def test_large_windows_stay_views_and_train_batch_by_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuner.data import windows as _windows
    from tuner.model.batches import TrainBatches, predict_windows
    from tuner.model.train import EpochRecorder, FitSettings, fit_trial

    series = np.arange(40, dtype=np.float32).reshape(20, 2)
    view = make_windows(series, seq_len=4, horizon=1, n_targets=1, start=8, end=20)
    assert view.x.flags.c_contiguous  # small: copied once
    monkeypatch.setattr(_windows, "CONTIGUOUS_LIMIT_BYTES", 0)
    view = make_windows(series, seq_len=4, horizon=1, n_targets=1, start=8, end=20)
    assert np.shares_memory(view.x, series) and not view.x.flags.c_contiguous
    batches = TrainBatches(view, 5, seed=0)
    seen_in_all_epochs: set[float] = set()
    for _ in range(5):  # full batches of distinct windows; the remainder changes per epoch
        seen = np.concatenate([batches[i][1] for i in range(len(batches))]).ravel()
        assert len(seen) == len(view.y) // 5 * 5 == len(set(seen.tolist()))
        seen_in_all_epochs |= set(seen.tolist())
        batches.on_epoch_end()
    assert seen_in_all_epochs == set(view.y.ravel().tolist())

    path = tmp_path / "s.csv"
    pd.DataFrame({"y": np.sin(np.arange(300) / 6)}).to_csv(path, index=False)
    data = _series(path, target=("y",), horizon=2)
    windows = data.windows(16)
    assert not windows["train"].x.flags.c_contiguous
    params = {"seq_len": 16, "units_0": 8, "batch_size": 32}
    result = fit_trial(
        params,
        windows,
        data,
        FitSettings(max_epochs=2, patience=2, seed=0),
        recorder=EpochRecorder(),
    )
    assert result.epochs_run == 2  # rounds (each several passes over this small set)
    assert np.isfinite(result.val_metrics["mse"])
    # Predictions in padded full batches are those of a plain predict, row for row.
    val = windows["val"]
    padded = predict_windows(result.model, val, batch_size=7)
    plain = result.model.predict(np.ascontiguousarray(val.x), verbose=0)
    assert len(val.x) % 7 and padded.shape == plain.shape
    np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-6)


def test_digits_are_read_row_by_row_and_split_by_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_digits

    monkeypatch.chdir(tmp_path)  # the packaged data is written under studies/builtin/
    data = load_dataset(resolve_dataset("digits"))
    assert isinstance(data, SequenceData)
    assert data.x.shape == (1797, 8, 8) and len(data.classes) == 10
    images = load_digits().images
    raw = data.x * data.scale + data.mean  # back in pixel values
    np.testing.assert_allclose(raw, images, atol=1e-4)  # step t = image row t
    sizes = {name: len(idx) for name, idx in data.parts.items()}
    assert sizes == {"train": 1257, "val": 270, "test": 270}
    for part in data.parts.values():  # stratified: every digit in every split
        assert len(np.unique(data.labels[part])) == 10
    assert data.info.cv == 0 and not data.info.variable_length
    # The same data written again gives the same bytes (and fingerprint).
    sha = data.fingerprint["sha256"]
    (tmp_path / "studies/builtin/digits.npz").unlink()
    assert load_dataset(resolve_dataset("digits")).fingerprint["sha256"] == sha


def test_a_builtin_dataset_writes_no_other_datasets_packaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    resolve_dataset("co2")
    assert not (tmp_path / "studies").exists()  # digits.npz is written only for digits
    resolve_dataset("digits")
    assert (tmp_path / "studies" / "builtin" / "digits.npz").is_file()
