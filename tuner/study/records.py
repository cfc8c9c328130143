"""The names a study records under: one home for every key the tuner writes on a
trial (Optuna user attributes) or on the study (`put`/`get`, below) and reads back
(the summary, the console, exports, the notebook). Keys that name an MLflow tag as
well live with their feature: `INIT_FROM` (tuner.model.transfer) and `ROUNDS_ATTR`
(tuner.model.budget).
"""

from typing import Any

# A trial's record.
MLFLOW_RUN_ID = "mlflow_run_id"  # its MLflow run
MODEL_URI = "model_uri"  # the model it logged (a champion at the time)
MEMBER_URI = "member_model_uri"  # the model it kept for a top-K ensemble
EPOCHS_RUN = "epochs_run"  # rounds trained
BEST_EPOCH = "best_epoch"  # the round whose weights it kept
STOP_REASON = "stop_reason"  # why training ended: patience, pruned, time limit, ...
VAL_METRICS = "val_metrics"  # every validation metric (the objective among them)
TEST_METRICS = "test_metrics"  # scored on the test split, for the best trial only
FOLD_VALUES = "fold_values"  # the objective on each fold under cross-validation
FAIL_REASON = "fail_reason"  # one line: why it failed
TRAIN_S = "train_s"  # seconds of training
RSS_MB = "rss_mb"  # the worker's resident memory after it
DEVICE = "device"  # backend and device it trained on
GPU = "gpu"  # the GPU it trained on, if any
WORKER = "worker"  # host and process that ran it
WORKER_STARTED = "worker_started"  # when that worker process started
PORTFOLIO = "portfolio"  # the portfolio entry it came from (also an MLflow tag)
FUSED_GROUP = "fused_group"  # --fuse: its group (the first trial's number; also a tag)
FUSED_MEMBERS = "fused_members"  # --fuse: trials trained in its group (also a tag)
WARM_START_FROM = "warm_start_from"  # STUDY#TRIAL a warm start took it from
MEASURED = "measured"  # --objectives/--constraint/--pick: latency_ms, params, ...
CONSTRAINT_EXCESS = "constraint_excess"  # per --constraint: measured - limit (<= 0: met)

# The study's record.
CONFIG = "config"  # the resolved TuneConfig it was created with
FINGERPRINT = "fingerprint"  # the data it was tuned on (file hash, split)
BASELINES = "baselines"  # naive baselines on validation and test
OBJECTIVE = "objective"  # what its value means, in words
ENSEMBLE = "ensemble"  # the top-K ensemble's record
MLFLOW_UI = "mlflow_ui"  # the link to its runs in the MLflow UI
PORTFOLIO_LINES = "portfolio_lines"  # what a new study enqueued and skipped
FUSE_MEASURED = "fuse_measured"  # --fuse auto: the group size kept, and each size's speed
IDENTITY = "identity"  # what every study the tuner creates carries (data, space, task)

_REQUIRED = object()


def put(study: Any, key: str, value: Any) -> None:
    """Record `value` on the study under `key`, as a system attribute of its storage:
    the study's records stay out of the user attributes that `optuna studies` and the
    Optuna dashboard show (about 2,600 characters in one cell otherwise)."""
    study._storage.set_study_system_attr(study._study_id, key, value)


def study_records(study: Any) -> dict[str, Any]:
    """Every record of the study: its system attributes over the user attributes a
    study made before `put` keeps them in (read as they are, never moved)."""
    return {**study.user_attrs, **study._storage.get_study_system_attrs(study._study_id)}


def get(study: Any, key: str, default: Any = _REQUIRED) -> Any:
    """The study's record under `key`; `default` where it has none (KeyError where no
    default is given)."""
    found = study_records(study)
    if key in found:
        return found[key]
    if default is _REQUIRED:
        raise KeyError(key)
    return default
