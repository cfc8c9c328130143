"""Built-in data shipped inside an installed package rather than as a file in
`datasets/`: a definition's `file = "sklearn:digits"` names scikit-learn's
handwritten digits (8x8 images, in the scikit-learn wheel: nothing is
downloaded), read row by row as 8 steps of 8 features.

Such data is written once as an `.npz` under `studies/builtin/`, with fixed zip
timestamps, so its fingerprint is the same on every machine with the same data.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuner.errors import InputError

PACKAGED = "sklearn:"
PACKAGED_DIR = Path("studies/builtin")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's first date: no build time in the bytes


def _digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits  # deferred: read only for this dataset

    digits = load_digits()
    return {"X": digits.images.astype(np.float32), "y": digits.target.astype(np.int64)}


_SOURCES: dict[str, Callable[[], dict[str, np.ndarray]]] = {"digits": _digits}


def packaged_file(name: str, *, definition: Path) -> Path:
    """The `.npz` of a packaged dataset, written on first use."""
    if name not in _SOURCES:
        raise InputError(
            f"dataset definition {definition}: unknown packaged data {PACKAGED}{name!r}; "
            f"known: {sorted(PACKAGED + k for k in _SOURCES)}."
        )
    path = (PACKAGED_DIR / f"{name}.npz").resolve()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        write_npz(partial, _SOURCES[name]())
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`numpy.savez` with fixed timestamps: the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
