"""Grid search (`--sampler grid`) and warm starts (`--warm-start`) on real studies."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import SPACES, Stores, tiny_tune_args
from tuner.cli.main import main
from tuner.data.catalog import resolve_dataset
from tuner.data.series import load_series
from tuner.data.spec import DatasetInfo
from tuner.errors import InputError
from tuner.space import grid_points, load_space, replay

GRID = [
    {"layers": 1, "units_0": 4},
    {"layers": 1, "units_0": 8},
    {"layers": 2, "units_0": 4, "units_1": 4},
    {"layers": 2, "units_0": 4, "units_1": 8},
    {"layers": 2, "units_0": 8, "units_1": 4},
    {"layers": 2, "units_0": 8, "units_1": 8},
]


def _co2_info() -> DatasetInfo:
    return load_series(resolve_dataset("co2")).info


def _without_fixed(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("seq_len", "batch_size")}


def test_the_grid_follows_conditional_parameters() -> None:
    points = grid_points(load_space(str(SPACES / "grid.py")), _co2_info())
    assert [_without_fixed(p) for p in points] == GRID


def test_float_grids_need_a_step(tmp_path: Path) -> None:
    path = tmp_path / "floats.py"
    path.write_text(
        "def space(hp, data):\n    hp.Fixed('seq_len', 8)\n"
        "    hp.Float('dropout', 0.0, 0.2, step=0.1)\n"
        "    hp.Float('learning_rate', 1e-3, 1e-1, step=10, sampling='log')\n"
    )
    points = grid_points(load_space(str(path)), _co2_info())
    got = [v for p in points for v in (p["dropout"], p["learning_rate"])]
    expected = [v for d in (0.0, 0.1, 0.2) for lr in (1e-3, 1e-2, 1e-1) for v in (d, lr)]
    assert got == pytest.approx(expected)
    path.write_text("def space(hp, data):\n    hp.Float('dropout', 0.0, 0.5)\n")
    with pytest.raises(InputError, match=r"hp.Float\('dropout'\) has no step"):
        grid_points(load_space(str(path)), _co2_info())


def test_replay_keeps_fitting_values_and_names_the_rest() -> None:
    space = load_space(str(SPACES / "tiny.py"))
    kept, outside, unknown = replay(
        space, _co2_info(), {"seq_len": 16, "layers": 2, "units_0": 8, "units_1": 4, "foo": 1}
    )
    assert kept == {"seq_len": 16, "layers": 2, "units_0": 8, "units_1": 4}
    assert not outside and unknown == ["foo"]
    _, outside, _ = replay(space, _co2_info(), {"seq_len": 12, "units_0": 6})
    assert set(outside) == {"seq_len", "units_0"}, outside


def _grid_args(stores: Stores, *extra: str) -> list[str]:
    args = tiny_tune_args(stores, study="grid")
    args[args.index("--space") + 1] = str(SPACES / "grid.py")
    i = args.index("--trials")
    del args[i : i + 2]
    return [*args, "--sampler", "grid", "--max-epochs", "1", *extra]


@pytest.mark.slow
def test_a_grid_study_runs_every_point_once_and_a_resume_only_the_missing_ones(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_grid_args(stores, "--trials", "4")) == 0
    assert "grid search: 6 points in space grid; 4 wanted" in capsys.readouterr().err
    study = optuna.load_study(study_name="grid", storage=stores.storage)
    first = [_without_fixed(t.params) for t in study.trials]
    assert len(first) == 4 and all(p in GRID for p in first)
    assert main(_grid_args(stores)) == 0  # --trials defaults to the grid's size
    assert "6 wanted" in capsys.readouterr().err
    study = optuna.load_study(study_name="grid", storage=stores.storage)
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    params = [_without_fixed(t.params) for t in study.trials]
    assert len(study.trials) == len(done) == 6, [t.state for t in study.trials]
    assert params[:4] == first  # the resume ran only the missing points
    assert sorted(params, key=str) == sorted(GRID, key=str)  # all points, none twice
    assert main(_grid_args(stores)) == 0  # exhausted: nothing more runs
    assert len(optuna.load_study(study_name="grid", storage=stores.storage).trials) == 6


def test_a_grid_over_a_float_without_step_exits_2_before_training(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*tiny_tune_args(stores), "--sampler", "grid"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "hp.Float('learning_rate') has no step" in err[0] and "--sampler tpe" in err[0]
    assert not (stores.root / "mlflow.db").exists()


@pytest.mark.slow
def test_warm_start_enqueues_the_best_configurations_first(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(tiny_tune_args(stores, study="before", trials=3)) == 0
    before = optuna.load_study(study_name="before", storage=stores.storage)
    best = sorted(
        (t for t in before.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value
    )[:2]
    capsys.readouterr()
    # The tiny space without its `normalize` choice: the warm start drops that parameter.
    lines = (SPACES / "tiny.py").read_text().splitlines(keepends=True)
    space = stores.root / "tiny_no_normalize.py"
    space.write_text("".join(line for line in lines if '"normalize"' not in line))
    args = tiny_tune_args(stores, study="after", trials=2)
    args[args.index("--space") + 1] = str(space)
    assert main([*args, "--warm-start", "before", "--warm-start-trials", "2"]) == 0
    err = capsys.readouterr().err
    assert f"warm start: before#{best[0].number}: dropped normalize" in err
    assert "warm start: 2 configuration(s) of study before enqueued first" in err
    after = optuna.load_study(study_name="after", storage=stores.storage)
    for trial, source in zip(after.trials, best, strict=True):
        expected = {k: v for k, v in source.params.items() if k != "normalize"}
        assert trial.params == expected
        assert trial.user_attrs["warm_start_from"] == f"before#{source.number}"
        run = MlflowClient(stores.tracking).get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["warm_start_from"] == f"before#{source.number}"


def test_warm_start_from_a_missing_study_exits_2(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*tiny_tune_args(stores), "--warm-start", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no study named 'nowhere'" in err[0], err
