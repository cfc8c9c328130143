"""`tuner predict` reads its input and checks `--out` before the model loads: a bad
file is one line within a second, whatever the model (here: no model at all)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tuner.cli.main import main


def _file(name: str, content: bytes) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        (root / name).write_bytes(content)
        return ["--input", str(root / name)]

    return make


def _out(where: str) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        (root / "h.csv").write_text("t,y\n1,2\n")
        (root / "folder").mkdir(exist_ok=True)
        out = {"folder": root / "folder", "missing": root / "no" / "such" / "out.csv"}[where]
        return ["--input", str(root / "h.csv"), "--out", str(out)]

    return make


CASES = [
    ("empty csv", _file("h.csv", b""), ["h.csv: the file is empty"]),
    ("ragged csv", _file("h.csv", b"a,b\n1,2\n3,4,5,6\n"), ["cannot be read as csv", "Expected 2"]),
    ("binary csv", _file("h.csv", bytes(range(256)) * 4), ["holds NUL bytes", "not CSV text"]),
    ("fake parquet", _file("h.parquet", b"t,y\n1,2\n"), ["cannot be read as parquet"]),
    ("empty npz", _file("s.npz", b""), ["s.npz: the file is empty"]),
    ("fake npz", _file("s.npz", b"not a zip"), ["not a readable .npz archive"]),
    ("latin-1 csv", _file("h.csv", b"t,y\n1,caf\xe9\n"), ["not UTF-8 text", "re-save"]),
    ("xlsx", _file("h.xlsx", b"PK"), ["unknown file type '.xlsx'"]),
    ("missing input", lambda r: ["--input", str(r / "none.csv")], ["does not exist"]),
    ("out is a folder", _out("folder"), ["--out", "is a folder; pass a file name"]),
    ("out in a missing folder", _out("missing"), ["the folder", "does not exist; create it"]),
]


@pytest.mark.parametrize(("what", "make", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_predict_input_exits_2_before_the_model_loads(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    what: str,
    make: Callable[[Path], list[str]],
    words: list[str],
) -> None:
    started = time.monotonic()
    code = main(["predict", "--model", str(tmp_path / "no-model-here"), *make(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert "no-model-here" not in err  # the input was refused before the model was looked at
    assert time.monotonic() - started < 30  # no model load (16-20 s before)
