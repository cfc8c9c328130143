"""Where a study's records live: the Optuna storage and the MLflow tracking URI
(as given, from the environment, or the local defaults), secrets masked in what
is shown, the local stores' folders, SQLite checks and locks, and the rule
for study names (they name experiments, registered models and folders).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuner.errors import InputError, Opt, causes
from tuner.paths import DEFAULT_STORAGE, DEFAULT_TRACKING_URI


def storage_url(given: str | None) -> str:
    """The Optuna storage: as given, else $TUNER_STORAGE, else the local SQLite file."""
    return given or os.environ.get("TUNER_STORAGE") or DEFAULT_STORAGE


def tracking_uri(given: str | None) -> str:
    """The MLflow tracking URI: as given, else $MLFLOW_TRACKING_URI, else the local store."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# user:password@ in a URL (the password may itself hold "@": up to the last one),
# and secret query parameters (?password=..., &token=...).
_PASSWORD = re.compile(r"(://[^:/@\s'\"]+:)[^\s'\"]*@")
_SECRET_QUERY = re.compile(
    r"([?&](?:password|passwd|pwd|token|access_token|api_key|apikey|secret)=)[^&\s'\"]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Hide the password in URLs such as postgresql://user:secret@host/db."""
    return _SECRET_QUERY.sub(r"\1***", _PASSWORD.sub(r"\1***@", text))


def tracking_server(uri: str) -> bool:
    """Whether the MLflow tracking URI is a server (over HTTP), not a local store."""
    return uri.startswith(("http://", "https://"))


def make_folder(folder: Path, *, option: str) -> None:
    """The folder of a local store, created if needed; a path through a regular file
    or an unwritable folder is an input error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(
            f"{Opt(option)}: {folder} cannot be a folder: a file lies on that path; pass a path "
            "under a folder."
        ) from None
    except PermissionError:
        raise InputError(f"{Opt(option)}: cannot create {folder} (permission denied).") from None
    if not os.access(folder, os.W_OK):
        raise InputError(
            f"{Opt(option)}: the folder {folder} is not writable; make it writable or choose "
            "another path."
        )


# Seconds a command waits for a local SQLite store another process holds locked
# (a long write, an open `sqlite3` shell) before it says so.
LOCK_WAIT_S = 60.0


def lock_wait_s() -> float:
    return LOCK_WAIT_S


def check_sqlite(path: Path, *, option: str, table: str, kind: str) -> None:
    """A local store file that exists must be an SQLite database that is empty or holds
    this kind of store (`table`: one of its tables): a damaged file or another
    application's database is refused before anything writes to it."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    fix = "pass a new file, or restore this one from a copy"
    # Read through SQLite only: closing any other descriptor of the file would drop
    # every POSIX lock this process holds on it, an open store connection's too.
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=lock_wait_s())) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    except sqlite3.OperationalError as e:
        if "locked" in str(e):
            raise InputError(_locked(option, str(path), lock_wait_s())) from None
        raise InputError(f"{Opt(option)}: {path} cannot be read as SQLite ({e}); {fix}.") from None
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise InputError(
                f"{Opt(option)}: {path} is not an SQLite database (damaged, or another kind of "
                f"file); {fix}."
            ) from None
        raise InputError(f"{Opt(option)}: {path} cannot be read as SQLite ({e}); {fix}.") from None
    tables = sorted(r[0] for r in rows)
    if tables and table not in tables:
        raise InputError(
            f"{Opt(option)}: {path} is another application's SQLite database (tables "
            f"{', '.join(tables[:4])}), not {kind}; pass a new file."
        )


@contextmanager
def store_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock beside a local database while it is created or migrated:
    two first runs at once must not both create its tables."""
    lock = database.with_name(database.name + ".lock")
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def locked_store(option: str, store: str, *, waited: float) -> Iterator[None]:
    """Say in one line that `store` (given by `option`, a keyword name) is locked by
    another process, where SQLite gave up waiting `waited` seconds for it ("database is locked"
    anywhere in the exception's chain)."""
    try:
        yield
    except Exception as e:
        if not any("database is locked" in str(cause) for cause in causes(e)):
            raise
        shown = mask_secrets(store).removeprefix("sqlite:///")  # a local store: its path
        raise InputError(_locked(option, shown, waited)) from None


def _locked(option: str, store: str, waited: float) -> str:
    return (
        f"{Opt(option)}: {store} is locked by another process (waited {waited:g} s); let it "
        "finish or stop it, then run the command again."
    )


# Study names become MLflow experiment and registered-model names and parts of
# file paths (artifacts, exports): one rule for all of them, checked before
# anything is created. A slash or `..` would leave the store's folder.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(option: str, value: str, *, derived: Opt | None = None) -> None:
    """Refuse a study name outside NAME_RULE (`option`: the keyword name of the option
    that gives it; `derived`: the option it was taken from)."""
    if _NAME.fullmatch(value):
        return
    fixed = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("._-")[:40] or "my-study"
    shown = repr(value if len(value) <= 40 else value[:40] + "...")
    where = f"the study name {shown} taken from {derived}" if derived else shown
    if len(value) > 100:
        where += f" ({len(value)} characters)"
    raise InputError(
        f"{Opt(option)}: {where} is not a valid name: a name is {NAME_RULE}; pass e.g. "
        f"{Opt('study', fixed)}.",
        option=option,
    )
