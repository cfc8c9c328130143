"""Where datasets come from: built-in definitions, `--dataset NAME|PATH`, and
definition files (`datasets/NAME.toml` or `.yaml`, holding the options a user
would pass on the command line); loading asks the task's reader (`Task.load`).
"""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from tuner.data.packaged import PACKAGED, packaged_file
from tuner.data.spec import Dataset, DatasetSpec
from tuner.errors import InputError, Opt
from tuner.paths import builtin_dir
from tuner.tasks.base import get_task, task_for_suffix, task_names

_DEFINITION_SUFFIXES = (".toml", ".yaml", ".yml")


def builtin_datasets() -> dict[str, DatasetSpec]:
    """Built-in dataset definitions by name."""
    return {name: read_definition(path) for name, path in _builtin_files().items()}


def _builtin_files() -> dict[str, Path]:
    folder = builtin_dir("datasets")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in _DEFINITION_SUFFIXES}


_OVERRIDABLE = (
    "target", "horizon", "time_col", "covariates", "split", "fill", "seasonal_period", "cv",
)  # fmt: skip


def resolve_dataset(name_or_path: str, **overrides: Any) -> DatasetSpec:
    """Turn `--dataset NAME|PATH` plus options (`target`, `horizon`, `time_col`,
    `covariates`, `split`, `fill`, `seasonal_period`, `cv`; None means not given) into a
    `DatasetSpec`.

    >>> resolve_dataset("co2", horizon=26).horizon
    26
    """
    unknown = set(overrides) - set(_OVERRIDABLE)
    if unknown:
        raise TypeError(f"resolve_dataset: unknown options {sorted(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    path = Path(name_or_path)
    if path.suffix == "" and "/" not in name_or_path:
        return replace(_builtin(name_or_path), **given)
    if not path.is_file():
        raise InputError(f"{Opt('dataset')}: file {name_or_path!r} does not exist; check the path.")
    if path.suffix in _DEFINITION_SUFFIXES:
        return replace(read_definition(path), **given)
    task = task_for_suffix(path.suffix)
    if task is None:
        suffixes = [s for name in task_names() for s in get_task(name).suffixes]
        raise InputError(
            f"{Opt('dataset', name_or_path)}: unknown file type {path.suffix!r}; use one of "
            f"{[*suffixes, *_DEFINITION_SUFFIXES]}."
        )
    if get_task(task).needs_target and not given.get("target"):
        raise InputError(
            f"{Opt('dataset', name_or_path)}: a table needs its target column(s); pass "
            f"{Opt('target', 'COL[,COL]')}."
        )
    return DatasetSpec(name=path.stem, path=path, task=task, **given)


def _builtin(name: str) -> DatasetSpec:
    """One built-in definition, read alone: packaged data (`digits`) is written to
    studies/builtin/ only when that dataset is the one asked for."""
    known = _builtin_files()
    if name not in known:
        raise InputError(
            f"{Opt('dataset')}: unknown dataset name {name!r}; built-in names are {sorted(known)} "
            "(see `tuner datasets`), or pass a path to a file."
        )
    return read_definition(known[name])


def read_definition(path: Path) -> DatasetSpec:
    """A dataset definition file (TOML or YAML) as a `DatasetSpec`."""
    raw = _parse_definition(path)
    allowed = {f.name for f in fields(DatasetSpec)} - {"name", "path"} | {"file"}
    unknown = set(raw) - allowed
    if unknown:
        raise InputError(
            f"dataset definition {path}: unknown keys {sorted(unknown)}; "
            f"allowed keys are {sorted(allowed)}."
        )
    if "file" not in raw:
        raise InputError(f"dataset definition {path}: needs a 'file' key naming the data file.")
    values = dict(raw)
    file = str(values.pop("file"))
    if file.startswith(PACKAGED):
        data_path = packaged_file(file.removeprefix(PACKAGED), definition=path)
    else:
        data_path = (path.parent / file).resolve()
        if not data_path.is_relative_to(path.parent.resolve()):
            # A definition from elsewhere must not read (and quote in its errors)
            # files it was not shipped with: /etc/passwd, ~/.ssh, ../../secrets.
            raise InputError(
                f"dataset definition {path}: file {file!r} lies outside the definition's folder; "
                "put the data beside the definition (or below it), or pass the data file itself "
                f"with {Opt('dataset')}."
            )
    for key in ("target", "covariates"):
        if isinstance(values.get(key), str):
            values[key] = (values[key],)
    for key in ("target", "covariates", "split"):
        if key in values:
            values[key] = tuple(values[key])
    values.setdefault("task", task_for_suffix(data_path.suffix) or "forecasting")
    try:
        return DatasetSpec(name=path.stem, path=data_path, **values)
    except TypeError as e:
        raise InputError(f"dataset definition {path}: {e}.") from None


def _parse_definition(path: Path) -> dict[str, Any]:
    text = path.read_bytes()
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"dataset definition {path}: not valid TOML ({e}).") from None
    import yaml  # deferred: only YAML definitions need it

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"dataset definition {path}: not valid YAML ({e}).") from None
    if not isinstance(loaded, dict):
        raise InputError(f"dataset definition {path}: must be a mapping of keys to values.")
    return loaded


# The last dataset loaded in this process, by its spec and file version: the CLI
# checks the data before it loads the training stack, and the study set-up then
# reuses that load.
_last: tuple[tuple[DatasetSpec, int, int], Dataset] | None = None


def load_dataset(spec: DatasetSpec) -> Dataset:
    """Load, check, split and scale (or encode) the data of any task."""
    global _last
    if not spec.path.is_file():
        raise InputError(f"dataset '{spec.name}': data file {spec.path} does not exist.")
    stat = spec.path.stat()
    if stat.st_size == 0:
        raise InputError(f"{spec.path}: the file is empty; give a file with data in it.")
    key = (spec, stat.st_mtime_ns, stat.st_size)
    if _last is not None and _last[0] == key:
        return _last[1]
    data: Dataset = get_task(spec.task).load(spec)
    _last = (key, data)
    return data
