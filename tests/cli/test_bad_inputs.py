"""Every bad input: exit code 2, one line on stderr naming input, rule and value."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.conftest import SPACES, Stores, start_tuner, tiny_tune_args
from tuner.cli.main import main
from tuner.study import records

CASES = [
    # (extra arguments, words the message must contain)
    (["--gpus", "7"], ["--gpus 7: GPU(s) ['7'] not visible", "--gpus none"]),
    (["--gpus", "first"], ["--gpus must be all, none or comma-separated GPU ids", "'first'"]),
    (["--precision", "float8"], ["--precision must be one of float32, mixed_float16", "'float8'"]),
    (["--dataset", "nosuchdata"], ["unknown dataset name 'nosuchdata'", "co2"]),
    (["--dataset", "missing/file.csv"], ["'missing/file.csv' does not exist"]),
    (["--dataset", "data.xlsx"], ["does not exist"]),
    (["--trials", "0"], ["--trials must be at least 1", "got 0"]),
    (["--max-epochs", "0"], ["--max-epochs must be at least 1", "got 0"]),
    (["--trials", "many"], ["--trials", "expected an integer", "'many'"]),
    (["--sampler", "bayes"], ["--sampler must be one of tpe, random, gp, cmaes", "'bayes'"]),
    (["--pruner", "asha"], ["--pruner must be one of hyperband, median, none", "'asha'"]),
    (["--space", "nosuchspace"], ["unknown search space 'nosuchspace'", "forecasting"]),
    (["--space", "missing_space.py"], ["'missing_space.py' does not exist"]),
    (
        ["--space", str(SPACES / "bad_range.py")],
        ["hp.Int('units_0')", "min_value <= max_value", "min_value=64, max_value=16"],
    ),
    (
        ["--space", str(SPACES / "empty_choice.py")],
        ["hp.Choice('optimizer')", "at least one value", "values=[]"],
    ),
    (
        ["--space", str(SPACES / "too_long.py")],
        ["seq_len=100000", "training split has 1598 rows", "at most 1585"],
    ),
    (["--tracking-uri", "http://127.0.0.1:9"], ["--tracking-uri", "unreachable", "127.0.0.1:9"]),
    (
        ["--tracking-uri", "runs/mlruns"],
        ["--tracking-uri runs/mlruns: a folder is MLflow's file store", "sqlite:///runs/mlruns.db"],
    ),
    (["--fuse", "0"], ["--fuse must be at least 1", "got 0"]),
    (["--fuse", "many"], ["--fuse", "expected a group size or 'auto'", "'many'"]),
    (["--fuse", "2", "--engine", "keras-tuner"], ["--fuse 2 fills groups", "--engine optuna"]),
    (["--horizon", "0"], ["--horizon must be at least 1", "got 0"]),
    (["--objectives", "latency_ms"], ["--objectives latency_ms", "must start with val_loss"]),
    (["--objectives", "val_loss,speed"], ["'speed' is not one of val_loss, latency_ms"]),
    (["--constraint", "latency<=2"], ["--constraint latency<=2", "'latency' is not measured"]),
    (["--constraint", "params>10"], ["--constraint params>10", "expected NAME<=NUMBER"]),
    (["--pick", "speed"], ["--pick must be one of latency_ms, batch_latency_ms, params", "speed"]),
    (
        ["--objectives", "val_loss,params", "--fuse", "2"],
        ["--fuse 2 trains groups", "--objectives val_loss,params"],
    ),
    (
        ["--constraint", "params<=10", "--engine", "keras-tuner"],
        ["--constraint params<=10 works with the optuna engine", "--engine keras-tuner"],
    ),
    (
        ["--objectives", "val_loss,params", "--sampler", "cmaes"],
        ["--sampler cmaes minimises one objective", "--sampler tpe"],
    ),
    (["--pick", "params", "--ensemble", "3"], ["--ensemble 3 averages K models", "--pick params"]),
    (["--engine", "ray"], ["--engine must be one of optuna, keras-tuner", "'ray'"]),
    (["--kt-tuner", "grid"], ["--kt-tuner must be one of hyperband, bayesian, random", "'grid'"]),
    (["--epoch-budget", "0"], ["--epoch-budget must be at least 1", "got 0"]),
    (
        ["--engine", "keras-tuner", "--workers", "2"],
        ["--engine keras-tuner runs one worker process", "--workers 2"],
    ),
    (["--seed", "-1"], ["--seed must be 0-", "got -1"]),
    (["--seed", str(2**40)], ["--seed must be 0-", f"got {2**40}"]),
    (["--timeout", "nan"], ["--timeout must be positive seconds", "got nan"]),
    (["--timeout", "inf"], ["--timeout must be positive seconds", "got inf"]),
    (["--split", "nan,nan,nan"], ["split must be three positive numbers", "nan"]),
    (["--split", "inf,0.1,0.1"], ["split must be three positive numbers", "inf"]),
    (["--workers", "1000"], ["--workers must be at most 64", "got 1000"]),
    (
        ["--space", str(SPACES / "fractional_step.py")],
        ["hp.Int('units_0') needs whole numbers", "step=0.5"],
    ),
    (["--sampler", "grid"], ["hp.Float('learning_rate') has no step", "--sampler tpe"]),
    (
        ["--sampler", "grid", "--engine", "keras-tuner"],
        ["--sampler grid is an Optuna sampler", "--engine keras-tuner"],
    ),
    (
        ["--sampler", "grid", "--warm-start", "tiny0"],
        ["--warm-start tiny0: a grid search runs every point", "--sampler tpe"],
    ),
    (["--warm-start", "tiny"], ["--warm-start tiny: a study cannot warm-start from itself"]),
    (["--warm-start", "nowhere"], ["--warm-start nowhere: no study named 'nowhere'"]),
    (
        ["--space", str(SPACES / "defined_twice.py")],
        ["'units_0' is defined twice", "hp.Int('units_0', 4, 8, step=4)", "16, 32"],
    ),
    (["--warm-start-trials", "0"], ["--warm-start-trials must be 1-100", "got 0"]),
    (["--init-from", "nothing/here"], ["--init-from nothing/here: not an exported bundle"]),
    (
        ["--init-from", "nothing/here", "--engine", "keras-tuner"],
        ["--init-from works with the optuna engine", "--engine keras-tuner"],
    ),
]


@pytest.mark.parametrize(("extra", "words"), CASES, ids=[" ".join(c[0])[:40] for c in CASES])
def test_bad_input_exits_2_with_one_line(
    stores: Stores, capsys: pytest.CaptureFixture[str], extra: list[str], words: list[str]
) -> None:
    # The argument given last wins, so `extra` overrides the tiny defaults.
    code = main([*tiny_tune_args(stores), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.slow
def test_bad_input_leaves_an_existing_study_intact(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:

    assert main(tiny_tune_args(stores, trials=2)) == 0
    before = [
        (t.number, t.state, t.value)
        for t in optuna.load_study(study_name="tiny", storage=stores.storage).trials
    ]
    capsys.readouterr()
    assert main([*tiny_tune_args(stores, trials=3), "--space", str(SPACES / "bad_range.py")]) == 2
    assert main([*tiny_tune_args(stores, trials=3), "--horizon", "5"]) == 2
    assert "created with horizon=13" in capsys.readouterr().err
    after = [
        (t.number, t.state, t.value)
        for t in optuna.load_study(study_name="tiny", storage=stores.storage).trials
    ]
    assert after == before


def test_unknown_study_for_status_and_best(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    optuna.create_study(study_name="other", storage=stores.storage)
    for command in ("status", "best"):
        assert main([command, "--study", "nope", "--storage", stores.storage]) == 2
        err = capsys.readouterr().err.strip()
        assert "no study named 'nope'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", ["status", "best", "worker", "export"])
def test_a_command_on_a_missing_storage_exits_2_and_creates_nothing(
    stores: Stores, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    missing = stores.root / "nowhere" / "optuna.db"
    args = [command, "--study", "s", "--storage", f"sqlite:///{missing}"]
    if command == "export":
        args += ["--out", str(stores.root / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no study storage at {missing}" in err[0], err
    assert not missing.parent.exists()


def _space_file(stores: Stores, text: str) -> list[str]:
    path = stores.root / "user_space.py"
    path.write_text(text)
    return ["--space", str(path)]


def _under_a_file(stores: Stores, option: str) -> list[str]:
    (stores.root / "plain.txt").write_text("a file, not a folder")
    return [option, f"sqlite:///{stores.root / 'plain.txt' / 'store.db'}"]


PATH_CASES = [
    (
        lambda s: _space_file(s, "def space(hp, data)\n    hp.Choice('seq_len', [8])\n"),
        ["user_space.py: line 1: expected ':'", "fix the file"],
    ),
    (
        lambda s: _space_file(s, "import no_such_module_here\n"),
        ["importing it raised ModuleNotFoundError", "no_such_module_here"],
    ),
    (
        lambda s: _under_a_file(s, "--storage"),
        ["--storage:", "plain.txt cannot be a folder: a file lies on that path"],
    ),
    (
        lambda s: _under_a_file(s, "--tracking-uri"),
        ["--tracking-uri:", "plain.txt cannot be a folder: a file lies on that path"],
    ),
]


@pytest.mark.parametrize(
    ("make", "words"), PATH_CASES, ids=["syntax", "import", "storage", "mlflow"]
)
def test_bad_files_and_paths_exit_2_with_one_line(
    stores: Stores, capsys: pytest.CaptureFixture[str], make: Any, words: list[str]
) -> None:
    code = main([*tiny_tune_args(stores), *make(stores)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["ui", "--tracking-uri", "http://127.0.0.1:5999"],
            [
                "--tracking-uri http://127.0.0.1:5999 is not a local SQLite store",
                "open its address",
            ],
        ),
        (["ui", "--port", "0"], ["--port must be 1-65535, but got 0"]),
        (
            ["ui", "--tracking-uri", "http://u:PW@127.0.0.1:5999"],
            ["--tracking-uri http://u:***@127.0.0.1:5999 is not a local SQLite store"],
        ),
    ],
    ids=["ui-server", "ui-port", "ui-password"],
)
def test_ui_refuses_what_it_cannot_serve(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]
) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "PW" not in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


_SQLITE = ("-wal", "-shm", "-journal")
BAD_NAMES = ["../../evil", "a/b", " ", "", "x" * 300, "a\nb", "_under", "tab\tname", "..", "ü"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_a_bad_study_name_is_refused_before_anything_is_created(
    stores: Stores, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # This xdist worker's folder (its tests run one at a time); `../..` from the
    # working folder is the run's folder, shared with the other workers. An earlier
    # test's SQLite files may lose their -wal and -shm companions meanwhile (its
    # connection closed by the garbage collector): those are not this command's.
    def files() -> list[Path]:
        return sorted(p for p in stores.root.parent.rglob("*") if not p.name.endswith(_SQLITE))

    before = files()
    code = main([*tiny_tune_args(stores), "--study", name])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and len(err) < 300, err
    assert "is not a valid name: a name is 1-100 letters, digits" in err
    assert files() == before  # nothing written
    assert not list(stores.root.parent.parent.glob("evil*"))  # nor above the stores


def test_a_study_name_taken_from_a_file_name_follows_the_same_rule(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    data = stores.root / "my data.csv"
    data.write_text("y\n1\n2\n")
    assert main(["tune", "--dataset", str(data), *stores.args()]) == 2
    err = capsys.readouterr().err.strip()
    assert "the study name 'my data' taken from --dataset" in err and "--study my-data" in err
    assert not (stores.root / "optuna.db").exists() and not (stores.root / "mlflow.db").exists()


def _foreign(stores: Stores, *, directions: list[str], trials: int) -> None:
    study = optuna.create_study(study_name="tiny", storage=stores.storage, directions=directions)
    for i in range(trials):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": float(i)},
                distributions={"x": optuna.distributions.FloatDistribution(0, 10)},
                values=[float(i)] * len(directions),
            )
        )


FOREIGN = [
    (["maximize"], 2, ["was not created by the tuner", "it maximizes, 2 trials"]),
    (["minimize"], 3, ["was not created by the tuner", "it minimizes, 3 trials"]),
    (["maximize"], 0, ["was not created by the tuner", "0 trials"]),
    (["minimize", "minimize"], 1, ["has 2 objectives", "not made by `tuner tune --objectives`"]),
]


@pytest.mark.parametrize(("directions", "trials", "words"), FOREIGN)
@pytest.mark.parametrize("command", ["tune", "status", "best"])
def test_a_study_the_tuner_did_not_create_is_refused_not_adopted(
    stores: Stores,
    capsys: pytest.CaptureFixture[str],
    command: str,
    directions: list[str],
    trials: int,
    words: list[str],
) -> None:
    _foreign(stores, directions=directions, trials=trials)
    if command == "tune":
        args = tiny_tune_args(stores)
    else:
        args = [command, "--study", "tiny", "--storage", stores.storage]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    assert len(study.trials) == trials  # untouched
    assert records.IDENTITY not in records.study_records(study)


def _random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 20)


def _other_application(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO invoices VALUES (1, 9.5)")
        db.commit()


def _damaged_sqlite(path: Path) -> None:
    _other_application(path)
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # the header survives, the pages do not
    path.write_bytes(bytes(data))


STORE_FILES = [
    (_random_bytes, "is not an SQLite database (damaged, or another kind of file)"),
    (_other_application, "is another application's SQLite database (tables invoices)"),
    (_damaged_sqlite, "cannot be read as SQLite"),
]


@pytest.mark.parametrize("store", ["optuna.db", "mlflow.db"])
@pytest.mark.parametrize(("make", "words"), STORE_FILES, ids=["bytes", "foreign", "damaged"])
def test_a_damaged_or_foreign_store_file_is_refused_and_left_as_it_was(
    stores: Stores, capsys: pytest.CaptureFixture[str], store: str, make: Any, words: str
) -> None:
    path = stores.root / store
    make(path)
    before = path.read_bytes()
    assert main(tiny_tune_args(stores)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    option = "--storage" if store == "optuna.db" else "--tracking-uri"
    assert f"{option}: {path} " in err and words in err, err
    assert path.read_bytes() == before  # nothing written into it
    other = "mlflow.db" if store == "optuna.db" else "optuna.db"
    assert not (stores.root / other).exists()  # nor the other store created


@pytest.mark.parametrize("study_exists", [False, True], ids=["new study", "resumed study"])
def test_a_deleted_mlflow_experiment_is_refused_and_no_study_is_left(
    stores: Stores, capsys: pytest.CaptureFixture[str], study_exists: bool
) -> None:
    from mlflow.tracking import MlflowClient

    if study_exists:  # a finished study of one trial, then its experiment deleted
        assert main(tiny_tune_args(stores, trials=1)) == 0
        capsys.readouterr()
    client = MlflowClient(stores.tracking)
    found = client.get_experiment_by_name("tiny")
    experiment = found.experiment_id if found else client.create_experiment("tiny")
    client.delete_experiment(experiment)
    assert main(tiny_tune_args(stores, trials=2)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    assert f"MLflow experiment 'tiny' (id {experiment}) was deleted" in err
    assert "--experiment NEW_NAME" in err
    names = [s.study_name for s in optuna.get_all_study_summaries(stores.storage)]
    if study_exists:
        assert len(optuna.load_study(study_name="tiny", storage=stores.storage).trials) == 1
    else:
        assert names == []  # nothing created


@pytest.mark.parametrize("store", ["optuna.db", "mlflow.db"])
def test_a_locked_store_is_named_after_a_bounded_wait(
    stores: Stores,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: str,
) -> None:
    import subprocess
    import sys

    import tuner.stores

    assert main(tiny_tune_args(stores, trials=1)) == 0
    capsys.readouterr()
    monkeypatch.setattr(tuner.stores, "LOCK_WAIT_S", 2.0)
    holder = subprocess.Popen(  # another process holds the file locked for writing
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"db = sqlite3.connect({str(stores.root / store)!r}, isolation_level=None)\n"
         "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(tiny_tune_args(stores, trials=2)) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300 and "Traceback" not in err, err
    option = "--storage" if store == "optuna.db" else "--tracking-uri"
    assert f"{option}: {stores.root / store} is locked by another process (waited 2 s)" in err
    study = optuna.load_study(study_name="tiny", storage=stores.storage)
    assert len(study.trials) == 1  # nothing lost, nothing added


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@127.0.0.1:9/db", "grpc://127.0.0.1:9"], ids=["postgres", "proxy"]
)
def test_an_unreachable_storage_server_creates_no_mlflow_store(
    stores: Stores, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert main([*tiny_tune_args(stores), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "pw" not in err, err
    assert "127.0.0.1:9" in err
    assert not (stores.root / "mlflow.db").exists() and not (stores.root / "optuna.db").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB file system (tmpfs) for the stores; needs the right to mount (root here)."""
    import subprocess

    folder = tmp_path / "small-disk"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_the_study_with_one_line(small_disk: Path) -> None:
    small = Stores(small_disk)
    proc = start_tuner(*tiny_tune_args(small, trials=20))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tuner: error: the disk holding the stores is full"), err
    assert "Traceback" not in err and "INSERT INTO" not in err, err
    study = optuna.load_study(study_name="tiny", storage=small.storage)
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)  # kept
