"""Finding, loading and probing a space module: built-in names or `.py` paths, the
probe of every definition against the data (run in a child process with a time
limit for a user's module)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from tuner.data.spec import DatasetInfo
from tuner.errors import InputError, Opt, flag_wording
from tuner.paths import builtin_dir
from tuner.space.hp import ProbeHP, SearchSpace, _raised
from tuner.tasks.base import import_plugins, plugin_modules

PROBE_SECONDS = 20  # a user's space module is imported and run once within this time


def load_space(name_or_path: str, *, isolate_with: DatasetInfo | None = None) -> SearchSpace:
    """Find a search-space module by built-in name or `.py` path and load its `space`;
    with `isolate_with`, a user's module is first run once in a child process
    (`probe_in_child`) on that dataset."""
    path = find_space(name_or_path)
    if isolate_with is not None and path.parent != builtin_dir("search_spaces"):
        probe_in_child(path, isolate_with)
    return _load(path)


def find_space(name_or_path: str) -> Path:
    """The module of a built-in space name or a `.py` path."""
    path = Path(name_or_path)
    if path.suffix == ".py" or "/" in name_or_path:
        if not path.is_file():
            raise InputError(
                f"{Opt('space')}: file {name_or_path!r} does not exist; check the path."
            )
    else:
        path = builtin_dir("search_spaces") / f"{name_or_path}.py"
        if not path.is_file():
            raise InputError(
                f"{Opt('space')}: unknown search space {name_or_path!r}; built-in spaces are "
                f"{sorted(builtin_spaces())} (see `tuner spaces`), or pass a .py path."
            )
    return path.resolve()


def _load(path: Path) -> SearchSpace:
    module_spec = importlib.util.spec_from_file_location(f"tuner_space_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"{Opt('space')}: cannot import {path}; it must be a Python module.")
    module = importlib.util.module_from_spec(module_spec)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout may carry --json
            module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise InputError(
            f"{Opt('space', path)}: line {e.lineno}: {e.msg} (the module must be valid Python); "
            "fix the file."
        ) from None
    except (Exception, SystemExit) as e:  # the user's module raised while it was imported
        raise InputError(
            f"{Opt('space', path)}: importing it {_raised(e, path)}; fix the file."
        ) from None
    fn = getattr(module, "space", None)
    if not callable(fn):
        raise InputError(
            f"{Opt('space', path)}: the module must define a function space(hp, data); none found."
        )
    return SearchSpace(name=path.stem, path=path, fn=fn)


def builtin_spaces() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_dir("search_spaces").glob("*.py"))}


def probe_space(space: SearchSpace, info: DatasetInfo) -> dict[str, list[Any]]:
    """Run the space once with checking `hp`; also check window lengths against the data."""
    hp = ProbeHP(space.name)
    space.run(hp, info)
    if not info.kind.windowed:  # sequences keep their own length
        return hp.candidates
    if "seq_len" not in hp.candidates:
        raise InputError(
            f"search space {space.name}: must define 'seq_len' (the input window length), "
            "e.g. hp.Choice('seq_len', data.seq_len_choices())."
        )
    longest = max(hp.candidates["seq_len"])
    if not isinstance(longest, int) or isinstance(longest, bool) or longest < 1:
        raise InputError(
            f"search space {space.name}: seq_len values must be positive integers, "
            f"but got {hp.candidates['seq_len']}."
        )
    if longest > info.max_seq_len:
        raise InputError(
            f"search space {space.name}: seq_len={longest} cannot be supplied by the data: "
            f"the training split has {info.n_train} rows (the shortest split bounds a text "
            f"model; a forecast also needs the horizon, {info.horizon}), so seq_len must be at "
            f"most {info.max_seq_len}; lower the range."
        )
    return hp.candidates


_PROBED = "tuner-space-probe:"  # the child's answer line on stdout


def probe_in_child(path: Path, info: DatasetInfo, *, seconds: float = PROBE_SECONDS) -> None:
    """Import a user's space module and run `space(hp, data)` once in a child process
    within `seconds`, before this process imports it: an endless loop, an exit or a
    crash of the interpreter becomes one line (InputError) instead of a hang or a
    silent exit of the tuner."""
    where = f"{Opt('space', path)}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from tuner.space.loading import _child; _child()"],
            # The tasks this process registered, and where their modules are found.
            input=pickle.dumps((str(path), info, plugin_modules(), sys.path, flag_wording.get())),
            capture_output=True,
            timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{where}: importing it and running space(hp, data) once took more than "
            f"{seconds:g} s (an endless loop?); a space only declares parameters: move slow "
            "work out of it."
        ) from None
    for line in done.stdout.decode(errors="replace").splitlines()[::-1]:
        if line.startswith(_PROBED):
            message = json.loads(line[len(_PROBED) :])
            if message:
                raise InputError(message)
            return
    raise InputError(
        f"{where}: importing it and running space(hp, data) ended the Python process "
        f"(exit code {done.returncode}) before it finished; a space only declares "
        "parameters: remove what ends the process."
    )


def _child() -> None:
    """The child of `probe_in_child`: its answer (an error message or null) is the
    last line on stdout; what the module prints goes to stderr."""
    path, info, plugins, parent_path, flags = pickle.loads(sys.stdin.buffer.read())
    flag_wording.set(flags)  # its errors are worded as the invoking edge's
    sys.path[:] = parent_path  # as multiprocessing's spawn does
    import_plugins(plugins)
    answer = None
    try:
        probe_space(_load(Path(path)), info)
    except InputError as e:
        answer = str(e)
    sys.stdout.write(_PROBED + json.dumps(answer) + "\n")
    sys.stdout.flush()
