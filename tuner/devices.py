"""Devices: which GPUs a run uses and how each worker process is prepared for them.

The parent process never imports a backend, so GPUs are found from
`$CUDA_VISIBLE_DEVICES` or `nvidia-smi`. Each worker sees one GPU (its own
`CUDA_VISIBLE_DEVICES`), grows GPU memory as needed instead of taking all of
it, and may train in mixed precision.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path

from tuner.errors import InputError, Opt

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def visible_gpus() -> list[str]:
    """Ids of the GPUs this process may use (empty on a machine without any)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    return _nvidia_smi("index") or []


def gpu_names() -> list[str]:
    """The names of the visible GPUs (e.g. `NVIDIA H200`), for reports."""
    gpus = visible_gpus()
    rows = _nvidia_smi("index,name") if gpus else None
    names = dict(row.split(",", 1) for row in rows or [] if "," in row)
    return [names[g].strip() for g in gpus if g in names]


def _nvidia_smi(fields: str) -> list[str] | None:
    """nvidia-smi's rows for `--query-gpu=FIELDS` (CSV, no header, no units); None
    where it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def choose_gpus(option: str | None) -> list[str]:
    """`--gpus`: `all` (default: every visible GPU), `none`, or ids like `0,2`."""
    if option in (None, "all"):
        return visible_gpus()
    if option == "none":
        return []
    wanted = [g.strip() for g in option.split(",") if g.strip()]
    if not wanted or not all(g.isdigit() for g in wanted):
        raise InputError(
            f"{Opt('gpus')} must be all, none or comma-separated GPU ids like 0,1, but got "
            f"{option!r}."
        )
    visible = visible_gpus()
    unknown = [g for g in wanted if g not in visible]
    if unknown:
        raise InputError(
            f"{Opt('gpus', option)}: GPU(s) {unknown} not visible on this host (visible: "
            f"{visible or 'none'}); pick from those or pass {Opt('gpus', 'none')}."
        )
    return wanted


def gpu_slots(gpus: list[str], *, per_gpu: int | None) -> list[str]:
    """The GPU of each worker process: `per_gpu` processes on every GPU (--trials-per-gpu;
    default 1), taking turns (0, 1, 0, 1, ...); refused on a host without a GPU."""
    if per_gpu is not None and not gpus:
        raise InputError(
            f"{Opt('trials_per_gpu', per_gpu)}: this host has no GPU (none listed by "
            f"CUDA_VISIBLE_DEVICES or nvidia-smi, or {Opt('gpus', 'none')}); on CPUs pass "
            f"{Opt('workers', 'N')} for trials in parallel."
        )
    return [gpus[i % len(gpus)] for i in range(len(gpus) * (per_gpu or 1))]


PROCESS_MB = 700  # what a worker process holds on its GPU before any model: context, workspace
MAX_DEFAULT_TRIALS_PER_GPU = 4
LARGE_MODEL_WEIGHTS = 5_000_000  # a model this large keeps a GPU busy by itself


def gpu_memory_mb(gpus: list[str]) -> float | None:
    """The memory of the smallest of `gpus` in MB, from nvidia-smi (None where it
    cannot tell)."""
    rows = _nvidia_smi("index,memory.total") if gpus else None
    try:
        sizes = dict(row.replace(" ", "").split(",")[:2] for row in rows or [])
        return min(float(sizes[g.strip()]) for g in gpus) if sizes else None
    except (KeyError, ValueError):
        return None


@functools.cache
def device_memory_mb() -> float | None:
    """The memory a trial of this process can use at most, in MB: its GPU's (the
    first of `CUDA_VISIBLE_DEVICES`) or, on a CPU, the machine's RAM, lowered to the
    cgroup's limit where one is set. None where it cannot tell."""
    gpus = visible_gpus()
    if gpus:
        return gpu_memory_mb(gpus[:1])
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError):
        return None
    return min(ram, _cgroup_limit_mb() or ram)


def _cgroup_limit_mb() -> float | None:
    """The memory limit of this process's cgroup (v2, then v1), None where unset."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text) / 2**20
    return None


def default_trials_per_gpu(
    *, weights: int, training_mb: float, gpu_mb: float | None, cores: int, n_gpus: int
) -> tuple[int, str]:
    """How many trials share each GPU when --trials-per-gpu is not given, and why.

    A small LSTM leaves a large GPU mostly idle, so up to 4 trials share it: as
    many as fit in 80 % of its memory (each process needs the training memory of
    the space's largest model and about 0.7 GB of its own) and as the CPU cores
    allow (one per process). One where the GPU's memory is unknown or the model is
    large enough to keep a GPU busy alone.
    """
    if gpu_mb is None:
        return 1, "1 trial per GPU (nvidia-smi did not tell its memory)"
    if weights > LARGE_MODEL_WEIGHTS:
        return 1, f"1 trial per GPU (the largest model has {weights / 1e6:.1f} M weights)"
    need = PROCESS_MB + training_mb
    by_memory = int(0.8 * gpu_mb // need)
    by_cores = max(1, cores // max(1, n_gpus))
    k = max(1, min(MAX_DEFAULT_TRIALS_PER_GPU, by_memory, by_cores))
    return k, (
        f"{k} trial(s) per GPU: the largest model needs about {need / 1024:.1f} GB per process "
        f"of the GPU's {gpu_mb / 1024:.0f} GB, {cores} CPU cores for {n_gpus} GPU(s)"
    )


def default_backend(*, gpu: str | None) -> str:
    """The Keras backend trials run on when `KERAS_BACKEND` is unset.

    On a CPU, JAX (the `jax` extra) when it is installed: it trains the same LSTM
    to the same loss 1.5 to 1.9 times faster per epoch than TensorFlow on the
    2-core benchmark machine (BENCHMARKS.md, B4). With a GPU, TensorFlow, whose
    LSTM and GRU layers run the fused cuDNN kernels, or where only JAX or PyTorch is
    installed on the GPU host, that one.
    """
    return _installed(("jax", "tensorflow") if gpu is None else _FUSED_FIRST)


def serving_backend() -> str:
    """The backend a saved model is served on where `KERAS_BACKEND` is unset: Keras'
    own default, TensorFlow, or where it is not installed JAX, then PyTorch."""
    return _installed(_FUSED_FIRST)


_FUSED_FIRST = ("tensorflow", "jax", "torch")  # TensorFlow: cuDNN's fused LSTM and GRU


def _installed(preferred: tuple[str, ...]) -> str:
    return next((b for b in preferred if importlib.util.find_spec(b) is not None), "tensorflow")


def prepare_process(*, gpu: str | None, threads: int | None) -> None:
    """Set up a worker before its backend is imported: the backend (unless
    `KERAS_BACKEND` names one), one GPU (or none), memory growth, and the CPU
    threads it may use."""
    os.environ.setdefault("KERAS_BACKEND", default_backend(gpu=gpu))
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu if gpu is not None else "-1"
    os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # TensorFlow
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
        if os.environ.get("KERAS_BACKEND") == "jax":
            os.environ["XLA_FLAGS"] = (
                f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
            )


def import_keras_quietly() -> None:
    """Import Keras with its backend's start-up chatter (C++ log lines) kept off stderr,
    after the backend is chosen (workers, `tuner export` and `tuner predict`)."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            import keras  # deferred: Keras loads only once the backend is chosen

            keras.ops.zeros(1)  # device discovery logs its own lines too (no GPU: "cuInit")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if keras.backend.backend() != "tensorflow":
        _keep_tensorflow_out()
    # Retracing notices: every trial builds a new model, so retracing is expected.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _keep_tensorflow_out() -> None:
    """Under JAX or PyTorch, tell Keras that TensorFlow is not there. Keras would
    import it (3.5 s and about 500 MB in each process here) only to check whether
    objects are TensorFlow tensors when it seeds or saves a model, and to seed
    TensorFlow's generator (its start-up lines then reach stderr); these processes
    make no TensorFlow objects."""
    from keras.src.utils.module_utils import tensorflow

    if tensorflow.module is None:
        tensorflow._available = False


def set_precision(precision: str) -> None:
    """Keras dtype policy for the models this process builds (heads stay float32)."""
    import keras  # deferred here and below: Keras loads only once the backend is chosen

    keras.config.set_dtype_policy(precision)


def clear_compiled() -> None:
    """Under JAX, drop its caches of compiled programs. They let a later trial of the
    same shapes skip compiling (make tune ran 1.5x longer clearing them after every
    trial) but grow a worker by about 5 MB a trial on make tune's space, so a worker
    clears them each time it has grown 10 % (`tuner.engine.objective`)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()


def describe_device() -> str:
    """Backend and device trials of this process run on, e.g. `jax:cpu`, `tensorflow:gpu`."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        kind = "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    elif backend == "jax":
        import jax

        kind = jax.default_backend()
    elif backend == "torch":
        import torch

        kind = "gpu" if torch.cuda.is_available() else "cpu"
    else:
        kind = "cpu"
    return f"{backend}:{kind}"


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryBound:
    """A worker's resident memory, bounded: each time it has grown 10 % over its
    first trial's or its last clearing's, the backend's compile caches are dropped
    (once per 10 % of growth, not after every trial: see clear_compiled)."""

    def __init__(self, growth: float = 1.10) -> None:
        self._growth = growth
        self._base = 0.0  # MB after the first trial, then after each clearing

    def after_trial(self) -> float:
        """This worker's resident MB after a trial (caches dropped where it grew)."""
        rss = rss_mb()
        if not self._base:
            self._base = rss
        elif rss > self._base * self._growth:
            clear_compiled()
            self._base = rss_mb()
        return rss
