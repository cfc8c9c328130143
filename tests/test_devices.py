"""Which GPU each worker process takes: one per GPU by default, K with --trials-per-gpu."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.conftest import Stores, tiny_tune_args
from tuner.cli.main import main
from tuner.config import TuneConfig
from tuner.data.catalog import load_dataset, resolve_dataset
from tuner.devices import default_trials_per_gpu, device_memory_mb, gpu_slots
from tuner.engine.runner import worker_gpus
from tuner.errors import InputError
from tuner.model.size import largest_model
from tuner.space import load_space, probe_space


def test_each_gpu_takes_its_share_of_worker_processes() -> None:
    assert gpu_slots(["0", "1"], per_gpu=None) == ["0", "1"]
    slots = gpu_slots(["0", "1"], per_gpu=3)
    assert slots == ["0", "1", "0", "1", "0", "1"]  # turns: the first trials spread out
    assert Counter(slots) == {"0": 3, "1": 3}
    assert gpu_slots([], per_gpu=None) == []  # CPU: the workers see no GPU


def test_trials_per_gpu_sets_the_local_workers_of_the_visible_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert worker_gpus(TuneConfig(trials_per_gpu=4)) == ["0", "1"] * 4
    assert worker_gpus(TuneConfig(gpus="1", trials_per_gpu=2)) == ["1", "1"]
    assert worker_gpus(TuneConfig()) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    with pytest.raises(InputError, match=r"trials_per_gpu=2: this host has no GPU"):
        worker_gpus(TuneConfig(trials_per_gpu=2))


def test_the_default_trials_per_gpu_follow_the_largest_model_memory_and_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = load_dataset(resolve_dataset("co2")).info
    space = load_space("forecasting")
    size = largest_model(probe_space(space, info), info)
    h200 = {"gpu_mb": 143_771.0, "cores": 16, "n_gpus": 1}

    def k(**given: object) -> int:
        fields = {"weights": size.weights, "training_mb": size.training_mb, **h200, **given}
        return default_trials_per_gpu(**fields)[0]  # type: ignore[arg-type]

    assert k() == 4  # make tune's space leaves a large GPU mostly idle
    assert k(cores=16, n_gpus=8) == 2  # one CPU core per worker process
    assert k(gpu_mb=2_500.0) == 2 and k(gpu_mb=1_000.0) == 1  # what fits in 80 % of it
    assert k(weights=6_000_000) == 1  # a large model keeps a GPU busy alone
    count, why = default_trials_per_gpu(
        weights=size.weights, training_mb=size.training_mb, gpu_mb=None, cores=16, n_gpus=1
    )
    assert count == 1 and "nvidia-smi" in why  # unsure: one
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: one per GPU, as before
    assert worker_gpus(TuneConfig(), space, info) == ["0", "1"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--trials-per-gpu", "2"], ["--trials-per-gpu 2: this host has no GPU", "--workers N"]),
        (["--trials-per-gpu", "2", "--gpus", "none"], ["--trials-per-gpu 2: this host has no"]),
        (["--trials-per-gpu", "2", "--workers", "2"], ["both set the number of worker"]),
        (["--trials-per-gpu", "99"], ["--trials-per-gpu must be at most 16", "got 99"]),
        (["--trials-per-gpu", "0"], ["--trials-per-gpu", "0"]),
    ],
)
def test_trials_per_gpu_on_cpu_or_beside_workers_is_refused(
    stores: Stores,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    words: list[str],
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert main([*tiny_tune_args(stores), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert all(w in lines[0] for w in words), lines[0]
    assert not (stores.root / "optuna.db").exists()  # refused before anything is recorded


def test_a_cpu_trial_may_use_the_machine_memory_within_its_cgroup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    device_memory_mb.cache_clear()
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        memory = device_memory_mb()
        assert memory is not None and 0 < memory <= ram
    finally:
        device_memory_mb.cache_clear()
