"""Bad data: exit code 2 and one line naming the file, the column or place, and the rule.

Each case writes a real file under tmp_path and runs `tuner tune` on it; the
check happens before any study or MLflow run is created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Stores
from tuner.cli.main import main


def _csv(text: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "data.csv"
        path.write_text(text)
        return path

    return write


def _bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path

    return write


def _npz(**arrays: np.ndarray) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "seq.npz"
        np.savez(path, **arrays)
        return path

    return write


def _series(n: int) -> str:
    return "t,y\n" + "".join(f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00,{i}\n" for i in range(n))


_X = np.random.default_rng(0).normal(size=(10, 5, 2)).astype(np.float32)
_X_HOLE = _X.copy()
_X_HOLE[3, 1, 0] = np.nan
_Y = np.array([0, 1] * 5)

CASES = [
    ("missing target", _csv("a,b\n1,2\n"), ["--target", "y"], ["column(s) ['y'] not found"]),
    (
        "missing time column",
        _csv(_series(50)),
        ["--target", "y", "--time-col", "when"],
        ["column(s) ['when'] not found", "--time-col"],
    ),
    (
        "non-numeric value",
        _csv("y\n1\n2\nabc\n4\n"),
        ["--target", "y"],
        ["column 'y' must be numeric", "row 3 (line 4)", "'abc'"],
    ),
    (
        "NaN values",
        _csv("y,z\n" + "1,0\n" * 4 + ",0\n" + "2,0\n" * 4 + ",0\n" + "3,0\n" * 40),
        ["--target", "y"],
        ["2 missing (NaN) or infinite", "column 'y'", "row 5 (line 6)", "--fill interpolate"],
    ),
    (
        "infinite value",
        _csv("y\n" + "1\n" * 30 + "inf\n" + "2\n" * 30),
        ["--target", "y"],
        ["1 missing (NaN) or infinite", "row 31 (line 32)"],
    ),
    (
        "unsorted timestamps",
        _csv("t,y\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n" + "2024-02-01,4\n"),
        ["--target", "y", "--time-col", "t"],
        ["must be sorted ascending", "row 3 (line 4)", "sort the file"],
    ),
    (
        "duplicated timestamps",
        _csv("t,y\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n2024-01-03,4\n"),
        ["--target", "y", "--time-col", "t"],
        ["repeats 2024-01-02", "row 3 (line 4)", "must be unique"],
    ),
    (
        "unparsable timestamps",
        _csv("t,y\n2024-01-01,1\nyesterday,2\n2024-01-03,4\n"),
        ["--target", "y", "--time-col", "t"],
        ["not timestamps", "row 2 (line 3)", "'yesterday'"],
    ),
    (
        "series too short",
        _csv(_series(30)),
        ["--target", "y", "--horizon", "10"],
        ["series too short", "validation split has 4 rows", "horizon (10)"],
    ),
    (
        "split border beyond the data",
        _csv(_series(50)),
        ["--target", "y", "--split", "30,40,60"],
        ["split border 60 is beyond the end of the data (50 rows)"],
    ),
    (
        "split fractions over 1",
        _csv(_series(50)),
        ["--target", "y", "--split", "0.7,0.2,0.2"],
        ["split fractions must sum to at most 1", "[0.7, 0.2, 0.2]"],
    ),
    (
        "unknown fill",
        _csv(_series(50)),
        ["--target", "y", "--fill", "zero"],
        ["fill must be one of ('interpolate', 'ffill')", "'zero'"],
    ),
    ("empty CSV", _bytes("data.csv", b""), ["--target", "y"], ["the file is empty"]),
    ("header only", _csv("y\n"), ["--target", "y"], ["header but no rows"]),
    (
        "constant target",
        _csv("y,z\n" + "".join(f"5,{i}\n" for i in range(60))),
        ["--target", "y"],
        ["target column 'y' is constant (5) over the", "training rows"],
    ),
    (
        "duplicate columns",
        _csv("y,y,z\n" + "".join(f"{i},{i},{i}\n" for i in range(60))),
        ["--target", "y.1"],
        ["header names column(s) ['y'] more than once"],
    ),
    (
        "value beyond float32",
        _csv("y\n" + "".join(f"{i}\n" for i in range(30)) + "1e300\n" + "1\n" * 30),
        ["--target", "y"],
        ["column 'y' holds 1e+300 at row 31 (line 32)", "beyond the float32 range"],
    ),
    (
        "many missing columns",
        _csv(",".join(f"column_{i}" for i in range(500)) + "\n" + ",".join("1" * 500) + "\n"),
        ["--target", "y"],
        ["column(s) ['y'] not found", "and 492 more"],
    ),
    (
        "integer times",
        _csv("t,y\n" + "".join(f"{1700000000 + 3600 * i},{i}\n" for i in range(40))),
        ["--target", "y", "--time-col", "t"],
        ["time column 't' holds integers such as 1700000000", "YYYYMMDD"],
    ),
    (
        "one class",
        _npz(X=_X, y=np.zeros(10, dtype=int)),
        [],
        ["y holds a single class ('0')", "at least two classes"],
    ),
    (
        "X and y lengths differ",
        _npz(X=_X, y=_Y[:9]),
        [],
        ["X has 10 sequences and y has shape (9,)"],
    ),
    ("npz without y", _npz(X=_X), [], ["lacks array(s) ['y']"]),
    (
        "NaN inside a sequence",
        _npz(X=_X_HOLE, y=_Y),
        [],
        ["1 NaN or infinite value(s) inside sequences", "sequence 3, step 1, feature 0"],
    ),
    ("empty npz", _bytes("seq.npz", b""), [], ["the file is empty"]),
    ("corrupt npz", _bytes("seq.npz", b"not a zip"), [], ["not a readable .npz archive"]),
    (
        "text not UTF-8",
        _bytes("book.txt", b"Alice was \xff\xfe beginning"),
        [],
        ["not UTF-8 text", "byte 0xff at offset 10", "re-save the file as UTF-8"],
    ),
    ("empty text", _bytes("book.txt", b"  \n\n "), [], ["the text is empty"]),
    ("one NUL character", _bytes("book.txt", b"\x00"), [], ["text too short"]),
    (
        "definition reading a system file",
        _bytes("d.toml", b'task = "char_lm"\nfile = "/etc/passwd"\n'),
        [],
        ["d.toml: file '/etc/passwd' lies outside the definition's folder", "--dataset"],
    ),
    (
        "definition reading a file above its folder",
        _bytes("d.yaml", b"file: ../../secret.csv\ntarget: y\n"),
        [],
        ["d.yaml: file '../../secret.csv' lies outside the definition's folder"],
    ),
    (
        "a class only in the test split",
        _npz(
            X=np.zeros((44, 5, 1)),
            y=np.array([0, 1] * 20 + [2] * 4),
            split=np.array([0] * 30 + [1] * 5 + [2] * 9),
        ),
        [],
        ["class(es) ['2'] have no sequence in the training or validation splits", "--split"],
    ),
    (
        "bare carriage return in the header",
        _bytes("data.csv", b"y,\r,"),
        ["--target", "y"],
        ["cannot be read as a csv table"],
    ),
    (
        "spreadsheet serial dates",
        _csv("t,y\n" + "".join(f"{45000 + i / 24},{i}\n" for i in range(60))),
        ["--target", "y", "--time-col", "t"],
        ["time column 't' holds numbers such as 45000", "serial days", "ISO 8601"],
    ),
    ("text too short", _bytes("book.txt", b"abcdefghij"), [], ["text too short"]),
    ("unknown file type", _bytes("data.xlsx", b"PK"), [], ["unknown file type '.xlsx'"]),
    (
        "complex X",
        _npz(X=_X.astype(np.complex64), y=_Y),
        [],
        ["X holds complex numbers", "real and imaginary parts"],
    ),
    ("complex y", _npz(X=_X, y=_Y.astype(np.complex64)), [], ["y holds complex numbers"]),
    ("zero steps", _npz(X=np.zeros((10, 0, 1)), y=_Y), [], ["X has shape (10, 0, 1)", "one step"]),
    ("zero features", _npz(X=np.zeros((10, 5, 0)), y=_Y), [], ["X has shape (10, 5, 0)"]),
    ("boolean X", _npz(X=_X > 0, y=_Y), [], ["X must be a numeric array", "dtype bool"]),
    (
        "continuous labels",
        _npz(X=np.zeros((40, 5, 1)), y=np.linspace(0.0, 1.0, 40)),
        [],
        ["y looks continuous", "are not whole numbers"],
    ),
]


@pytest.mark.parametrize(("what", "write", "options", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_data_exits_2_with_one_clear_line(
    what: str,
    write: Callable[[Path], Path],
    options: list[str],
    expected: list[str],
    stores: Stores,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(stores.root)
    code = main(["tune", "--dataset", str(path), *options, "--trials", "1", *stores.args()])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tuner: error: ")
    for part in expected:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    if what not in ("unknown fill", "split fractions over 1"):
        assert path.name in lines[0]
    assert not (stores.root / "optuna.db").exists()  # nothing was recorded


def test_fill_interpolate_accepts_the_nan_file(stores: Stores) -> None:
    from tuner.data.catalog import load_dataset, resolve_dataset

    path = _csv("y,z\n" + "1,0\n" * 4 + ",0\n" + "2,0\n" * 4 + ",0\n" + "3,0\n" * 40)(stores.root)
    for fill, row_4, row_9 in (("interpolate", 1.5, 2.5), ("ffill", 1.0, 2.0)):
        data = load_dataset(resolve_dataset(str(path), target=("y",), fill=fill))
        assert data.info.n_rows == 50
        y = data.to_original_units(data.scaled[None, :, :1])[0, :, 0]
        # Row 4 lies between 1 and 2, row 9 between 2 and 3: the gaps are filled.
        assert y[4] == pytest.approx(row_4, abs=1e-5) and y[9] == pytest.approx(row_9, abs=1e-5)
        assert y[:4] == pytest.approx([1, 1, 1, 1], abs=1e-5)


def test_integer_dates_parse_as_yyyymmdd_or_yyyymm(stores: Stores) -> None:
    from tuner.data.catalog import load_dataset, resolve_dataset

    days = [f"{20240101 + i},{i}\n" for i in range(28)]  # 2024-01-01 ... 2024-01-28
    months = [f"{202001 + i},{i}\n" for i in range(12)]  # 2020-01 ... 2020-12
    for rows, first, step in ((days, "2024-01-01", "1D"), (months, "2020-01-01", None)):
        path = _csv("t,y\n" + "".join(rows))(stores.root)
        data = load_dataset(resolve_dataset(str(path), target=("y",), time_col="t"))
        times = data.timestamps
        assert str(times[0])[:10] == first and str(times[-1])[:4] in ("2024", "2020")
        if step:
            assert (times[1:] - times[:-1] == np.timedelta64(1, "D")).all()


def test_offsets_across_a_daylight_saving_change_are_read_in_utc(stores: Stores) -> None:
    from tuner.data.catalog import load_dataset, resolve_dataset

    # Europe/Berlin, 2024-03-31: 01:00+01:00 is followed by 03:00+02:00 (both 01:00 UTC+1h).
    local = pd.date_range("2024-03-30 12:00", periods=48, freq="h", tz="Europe/Berlin")
    rows = [f"{t.isoformat()},{i}\n" for i, t in enumerate(local)]
    assert {r[19:25] for r in rows} == {"+01:00", "+02:00"}
    path = _csv("t,y\n" + "".join(rows))(stores.root)
    data = load_dataset(resolve_dataset(str(path), target=("y",), time_col="t", horizon=2))
    times = data.timestamps
    assert str(times[0]).startswith("2024-03-30T11:00")  # 12:00+01:00 in UTC
    assert (times[1:] - times[:-1] == np.timedelta64(1, "h")).all()  # one hour a row


@pytest.mark.parametrize("name", ["data.csv", "book.txt", "data.npz"])
def test_a_2_gb_sparse_file_is_refused_in_bounded_memory(stores: Stores, name: str) -> None:
    """A 2 GB file of zero bytes (`truncate -s 2G`) costs no memory to refuse, and the
    error line stays one terminal line."""
    import subprocess
    import sys

    path = stores.root / name
    with path.open("wb") as f:
        f.truncate(2 << 30)
    options = ["--target", "y"] if name.endswith(".csv") else []
    # VmHWM: this process's own peak (ru_maxrss would count the forking pytest too).
    code = (
        "import sys; from tuner.cli.main import main; rc = main(sys.argv[1:]); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(hwm.split()[1], file=sys.stderr); sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "tune", "--dataset", str(path), *options, *stores.args()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    *lines, peak_kb = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and len(lines[0]) < 400, lines
    assert int(peak_kb) < 1024 * 1024, f"peak RSS {int(peak_kb) >> 10} MiB"  # under 1 GiB
