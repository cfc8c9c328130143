"""Property-based tests (Hypothesis) of the data readers and of `predict`'s input:
whatever the bytes, the readers load the data or refuse it with one line (InputError,
exit 2), never another exception, a traceback or a hang.

A fixed budget: `derandomize=True` draws the same examples every run (a failure
reproduces), `max_examples` bounds the time (about a minute for the module here).
"""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuner.cli.main import main
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.errors import InputError

BUDGET = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ONE_LINE = 300  # characters a refusal may take

# Cells a hostile or careless table holds: numbers, gaps, words, dates with and
# without offsets, spreadsheet serials, quotes, separators, control characters.
_WORDS = (
    "", "nan", "NaN", "inf", "-inf", "NULL", "True", "false", "1e400", "0x1F",
    "2024-03-31 01:00:00+01:00", "2024-03-31 03:00:00+02:00", "2024-13-45",
    "45000.5", "1,5", '"a,b"', '"', "\x00", "é", "日本", " ", "\t", "1;2",
)  # fmt: skip
CELLS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(_WORDS),
    st.text(max_size=8),
)


@st.composite
def tables(draw: st.DrawFn) -> bytes:
    """A CSV-ish table: a header naming t and y (mostly), then ragged rows of cells."""
    width = draw(st.integers(1, 4))
    header = draw(st.sampled_from([["t", "y"], ["y"], ["t", "y", "x"], []]))
    header += [draw(st.text(max_size=5)) for _ in range(max(0, width - len(header)))]
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=width + 1), max_size=40))
    sep = draw(st.sampled_from([",", ",", ";", "\t"]))
    text = "\n".join(sep.join(row) for row in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


ARRAYS = st.one_of(
    st.builds(lambda s: np.zeros(s, "float32"), st.lists(st.integers(0, 6), max_size=4)),
    st.builds(lambda s: np.full(s, np.nan), st.lists(st.integers(0, 4), max_size=3)),
    st.builds(lambda n: np.arange(n), st.integers(0, 30)),
    st.builds(lambda n: np.array(["a", "b"] * n), st.integers(0, 10)),
    st.builds(lambda n: np.ones(n, bool), st.integers(0, 10)),
    st.builds(lambda n: np.ones((n, 3, 1), complex), st.integers(0, 5)),
    st.builds(lambda n: np.full(n, -1, "int64"), st.integers(0, 10)),
    st.just(np.array(3.0)),
)


@st.composite
def archives(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """An npz with some of X, y, split, lengths (and strangers), of any shape and dtype."""
    keys = draw(st.sets(st.sampled_from(["X", "y", "split", "lengths", "timestamps", "z"])))
    return {key: draw(ARRAYS) for key in keys}


def _refused_in_one_line(load: object) -> None:
    started = time.monotonic()
    try:
        load()  # type: ignore[operator]
    except InputError as e:
        message = str(e)
        assert "\n" not in message.strip() and len(message) < ONE_LINE, message
    assert time.monotonic() - started < 30


@BUDGET
@given(content=tables(), time_col=st.booleans())
def test_any_table_loads_or_is_refused_in_one_line(
    tmp_path: Path, content: bytes, time_col: bool
) -> None:
    path = tmp_path / "series.csv"
    path.write_bytes(content)
    options = {"target": "y", "time_col": "t" if time_col else None, "horizon": 2}
    _refused_in_one_line(lambda: load_dataset(resolve_dataset(str(path), **options)))


@BUDGET
@given(arrays=archives(), raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_any_npz_loads_or_is_refused_in_one_line(
    tmp_path: Path, arrays: dict[str, np.ndarray], raw: bytes | None
) -> None:
    path = tmp_path / "sequences.npz"
    if raw is None:
        np.savez(path, **arrays)
    else:  # a zip whose member is not an array, or no zip at all
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("X.npy", raw)
    _refused_in_one_line(lambda: load_dataset(resolve_dataset(str(path))))


@BUDGET
@given(content=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)))
def test_any_text_loads_or_is_refused_in_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "book.txt"
    path.write_bytes(content)
    _refused_in_one_line(lambda: load_dataset(resolve_dataset(str(path))))


@BUDGET
@given(
    content=st.one_of(tables(), st.binary(max_size=300)),
    suffix=st.sampled_from([".csv", ".npz", ".parquet", ".txt"]),
)
def test_any_predict_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, suffix: str
) -> None:
    # No model at the path: a readable input is refused for that, after the input.
    path = tmp_path / f"history{suffix}"
    path.write_bytes(content)
    started = time.monotonic()
    code = main(["predict", "--model", str(tmp_path / "no-model"), "--input", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and len(err) < ONE_LINE and "Traceback" not in err, err
    assert time.monotonic() - started < 30
