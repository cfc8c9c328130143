"""Sequence classification data: an `.npz` file with `X` (samples, steps, features)
and `y` (samples,).

Sequences of different lengths are right-padded; their lengths come from a
`lengths` array or from trailing all-NaN steps. After scaling, padding is 0.0
and the model masks it. An optional `split` array (0 train, 1 validation,
2 test per sample) fixes the split; otherwise it is stratified by class from
the split fractions, or taken in file order from row borders.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split

from tuner.config import CV_STEPS, DEFAULT_FOLDS, SMALL_SET
from tuner.data.spec import (
    DatasetInfo,
    DatasetSpec,
    Windows,
    fingerprint,
    split_borders,
)
from tuner.errors import InputError, Opt

PAD = 0.0  # the value padded steps hold after scaling; the model's Masking layer skips it
_SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class SequenceData:
    """Scaled, padded sequences with integer labels, split into train/val/test."""

    spec: DatasetSpec
    x: np.ndarray  # (samples, steps, features) float32, scaled, padding = PAD
    labels: np.ndarray  # (samples,) int32 index into classes
    classes: tuple[str, ...]
    lengths: np.ndarray  # (samples,)
    parts: dict[str, np.ndarray]  # sample indices of train, val, test
    mean: np.ndarray
    scale: np.ndarray
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def cv(self) -> int:
        """Folds: the definition's or --cv's; by default K-fold on small sets of
        short sequences."""
        if self.spec.cv is not None:
            return self.spec.cv
        pool = self._non_test
        small = len(pool) < SMALL_SET and int(self.lengths[pool].sum()) <= CV_STEPS
        return DEFAULT_FOLDS if small else 0

    @property
    def info(self) -> DatasetInfo:
        """Under cross-validation the training part is a fold's."""
        n, steps, features = self.x.shape
        n_train = (
            len(self._non_test) * (self.cv - 1) // self.cv if self.cv else len(self.parts["train"])
        )
        return DatasetInfo(
            task="classification",
            n_features=features,
            n_rows=n,
            n_train=n_train,
            max_seq_len=steps,
            n_classes=len(self.classes),
            variable_length=bool((self.lengths < steps).any()),
            cv=self.cv,
        )

    @property
    def _non_test(self) -> np.ndarray:
        return np.sort(np.concatenate([self.parts["train"], self.parts["val"]]))

    def folds(self) -> list[SequenceData]:
        """Stratified K-fold over the training and validation sequences (the test
        sequences stay out), each fold scaled on its own training sequences."""
        if not self.cv:
            return []
        pool = self._non_test
        splitter = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=_SPLIT_SEED)
        inside = np.arange(self.x.shape[1])[None, :] < self.lengths[:, None]
        raw = np.where(inside[:, :, None], self.x * self.scale + self.mean, np.nan)
        out = []
        for train, val in splitter.split(pool, self.labels[pool]):
            parts = {"train": pool[train], "val": pool[val], "test": pool[:0]}
            scaled, mean, scale = _scale(raw, self.lengths, parts["train"])
            fold_spec = replace(self.spec, cv=0)
            out.append(replace(self, spec=fold_spec, x=scaled, mean=mean, scale=scale, parts=parts))
        return out

    def preprocessing(self) -> dict[str, Any]:
        """What a model trained on this data needs to read new data (JSON-able)."""
        return {
            "task": "classification",
            "classes": list(self.classes),
            "steps": int(self.x.shape[1]),
            "n_features": int(self.x.shape[2]),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    def windows(self, seq_len: int) -> dict[str, Windows]:
        """The split's sequences; they keep their own length whatever `seq_len` is."""
        return {
            name: Windows(x=self.x[idx], y=self.labels[idx]) for name, idx in self.parts.items()
        }

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        return classification_metrics(y_true, class_probabilities(y_pred), len(self.classes))

    def baselines(self) -> dict[str, dict[str, float]]:
        """Majority class (its label as the prediction, training frequencies as
        the probabilities) on the validation and test sequences."""
        k = len(self.classes)
        prior = np.bincount(self.labels[self.parts["train"]], minlength=k) / len(
            self.parts["train"]
        )
        out = {}
        for split in ("val", "test"):
            y = self.labels[self.parts[split]]
            out[f"majority_{split}"] = classification_metrics(y, np.tile(prior, (len(y), 1)), k)
        return out


def class_probabilities(y_pred: np.ndarray) -> np.ndarray:
    """(n, classes) probabilities from a sigmoid (n, 1) or softmax (n, k) output."""
    if y_pred.shape[-1] == 1:
        p = y_pred[:, 0]
        return np.stack([1 - p, p], axis=1)
    return y_pred


def classification_metrics(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, log loss and macro F1 of class probabilities against labels."""
    labels = list(range(n_classes))
    predicted = proba.argmax(axis=1)
    clipped = np.clip(proba, 1e-7, 1.0)
    return {
        "log_loss": float(log_loss(y, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)),
        "accuracy": float(np.mean(predicted == y)),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
    }


def load_sequences(spec: DatasetSpec) -> SequenceData:
    """Read `X`/`y` (and `lengths`, `split` if present), check, split and scale them."""
    arrays = read_npz(spec.path)
    x, y = sequence_array(arrays["X"], spec.path), arrays["y"]
    _check_one_label_each(x, y, spec.path)
    _check_labels(y, spec.path)
    lengths = sequence_lengths(x, arrays.get("lengths"), spec.path)
    classes, labels = np.unique(y.astype(str), return_inverse=True)
    if len(classes) < 2:
        raise InputError(
            f"{spec.path}: y holds a single class ({str(classes[0])!r}); classification needs at "
            "least two classes."
        )
    parts = _split(labels, arrays.get("split"), spec)
    train_labels = np.unique(labels[parts["train"]])
    if len(train_labels) < 2:
        raise InputError(
            f"{spec.path}: the training split holds a single class "
            f"({str(classes[train_labels[0]])!r}); give more samples or another {Opt('split')}."
        )
    _check_folds(labels, parts, spec)
    scaled, mean, scale = _scale(x, lengths, parts["train"])
    data = SequenceData(
        spec=spec,
        x=scaled,
        labels=labels.astype(np.int32),
        classes=tuple(str(c) for c in classes),
        lengths=lengths,
        parts=parts,
        mean=mean,
        scale=scale,
        fingerprint=fingerprint(
            spec,
            samples=len(x),
            steps=int(x.shape[1]),
            features=int(x.shape[2]),
            classes=[str(c) for c in classes],
            split_sizes=[len(parts[s]) for s in ("train", "val", "test")],
        ),
    )
    _check_classes_trained(data)
    return data


def sequence_array(x: np.ndarray, path: Path) -> np.ndarray:
    """X as float32 (samples, steps, features), a 2-D X read as one feature: real
    numbers, none of its sizes 0. The check of every reader of sequences (training
    data, `tuner predict`, a served request), so each says the same."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise InputError(
            f"{path}: X must be a numeric array shaped (samples, steps, features), but "
            f"has shape {x.shape} and dtype {x.dtype}; reshape it."
        )
    if np.iscomplexobj(x):
        raise InputError(
            f"{path}: X holds complex numbers; give real values (e.g. the real and imaginary "
            "parts as two features)."
        )
    if 0 in x.shape:
        raise InputError(
            f"{path}: X has shape {x.shape}: it needs at least one sequence, one step "
            "and one feature; check how it was saved."
        )
    return x.astype(np.float32)


def _check_one_label_each(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    if np.iscomplexobj(y):
        raise InputError(f"{path}: y holds complex numbers; give class labels.")
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(
            f"{path}: X and y must have one label per sequence, but X has {len(x)} "
            f"sequences and y has shape {y.shape}; give y shaped ({len(x)},)."
        )


def _check_classes_trained(data: SequenceData) -> None:
    """Every class needs a sequence the trials train on (the training split; under
    cross-validation the training and validation splits, pooled into folds): a class
    seen only in the held-out splits can never be predicted."""
    trained = data._non_test if data.cv else data.parts["train"]
    missing = sorted(set(range(len(data.classes))) - set(data.labels[trained].tolist()))
    if missing:
        where = "training or validation splits" if data.cv else "training split"
        names = [data.classes[i] for i in missing[:5]]
        raise InputError(
            f"{data.spec.path}: class(es) {names} have no sequence in the {where}, so no model "
            f"can learn them; give them training samples or another {Opt('split')}."
        )


_MAX_CLASSES = 1000


def _check_labels(y: np.ndarray, path: Path) -> None:
    """Labels, not measurements: fractional floats or a class per sample are refused."""
    if np.issubdtype(y.dtype, np.floating):
        fractional = y[np.isfinite(y) & (y != np.round(y))]
        if len(fractional):
            raise InputError(
                f"{path}: y looks continuous (values such as {fractional[0]:g} are not whole "
                "numbers); classification needs class labels: give y as labels, or forecast "
                "the values instead."
            )
    n_classes = len(np.unique(y))
    if n_classes > min(_MAX_CLASSES, max(2, len(y) // 2)):
        raise InputError(
            f"{path}: y has {n_classes} different values for {len(y)} sequences; "
            "classification needs a few samples per class: check that y holds labels."
        )


def read_npz(path: Path, *, need: tuple[str, ...] = ("X", "y")) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        reason = "it holds pickled objects" if "pickled" in str(e) else str(e)[:80]
        raise InputError(
            f"{path}: not a readable .npz archive ({reason}); save it with "
            "numpy.savez(X=..., y=...)."
        ) from None
    missing = [k for k in need if k not in arrays]
    if missing:
        raise InputError(
            f"{path}: the archive lacks array(s) {missing}; it has {sorted(arrays)}; "
            "save X (samples, steps, features) and y (samples,)."
        )
    return arrays


def sequence_lengths(x: np.ndarray, given: Any, path: Path) -> np.ndarray:
    """Each sequence's length (`given`, or up to its last step not all NaN); checks
    that every step inside it is finite."""
    steps = x.shape[1]
    if given is not None:
        given = np.asarray(given)
        whole = np.issubdtype(given.dtype, np.integer) or (
            np.issubdtype(given.dtype, np.floating) and bool((given == np.round(given)).all())
        )
        if not whole or given.shape != (len(x),) or given.min() < 1 or given.max() > steps:
            shown = (
                f"range [{given.min()}, {given.max()}]"
                if given.size and whole
                else f"dtype {given.dtype}"
            )
            raise InputError(
                f"{path}: lengths must hold one whole number in [1, {steps}] per sequence "
                f"({len(x)} of them), but has shape {given.shape} and {shown}."
            )
        lengths: np.ndarray = given.astype(np.int64)
    else:
        present = ~np.isnan(x).all(axis=2)  # a step of all NaN is padding
        last = steps - np.argmax(present[:, ::-1], axis=1)
        lengths = np.where(present.any(axis=1), last, 0)
        if lengths.min() < 1:
            i = int(np.argmin(lengths))
            raise InputError(f"{path}: sequence {i} is empty (all its steps are NaN); drop it.")
    inside = np.arange(steps)[None, :] < lengths[:, None]
    bad = ~np.isfinite(x) & inside[:, :, None]
    if bad.any():
        i, t, f = (int(v[0]) for v in np.nonzero(bad))
        raise InputError(
            f"{path}: X has {int(bad.sum())} NaN or infinite value(s) inside sequences, the "
            f"first at sequence {i}, step {t}, feature {f}; only trailing padding steps may be "
            "NaN: fill or drop them."
        )
    return lengths


def _split(
    labels: np.ndarray, given: np.ndarray | None, spec: DatasetSpec
) -> dict[str, np.ndarray]:
    n = len(labels)
    if given is not None:
        if given.shape != (n,) or not np.isin(given, (0, 1, 2)).all():
            raise InputError(
                f"{spec.path}: split must hold 0 (train), 1 (validation) or 2 (test) for each "
                f"of the {n} sequences, but has shape {given.shape} and values "
                f"{sorted(set(given.ravel().tolist()))[:5]}."
            )
        parts = {s: np.flatnonzero(given == i) for i, s in enumerate(("train", "val", "test"))}
    elif spec.split_is_borders:
        a, b, c = split_borders(n, spec, unit="sequences")
        parts = {"train": np.arange(a), "val": np.arange(a, b), "test": np.arange(b, c)}
    else:
        parts = _stratified(labels, spec)
    empty = [s for s, idx in parts.items() if len(idx) == 0]
    if empty:
        raise InputError(
            f"{spec.path}: the {empty[0]} split holds no sequence ({n} in all); give more data or "
            f"another {Opt('split')}."
        )
    return parts


def _stratified(labels: np.ndarray, spec: DatasetSpec) -> dict[str, np.ndarray]:
    train_f, val_f, test_f = spec.split
    idx = np.arange(len(labels))
    try:
        rest, test = train_test_split(
            idx, test_size=test_f, stratify=labels, random_state=_SPLIT_SEED
        )
        train, val = train_test_split(
            rest,
            test_size=val_f / (train_f + val_f),
            stratify=labels[rest],
            random_state=_SPLIT_SEED,
        )
    except ValueError as e:  # a class too small to appear in every split
        raise InputError(f"{spec.path}: cannot split by class ({e}); give more samples.") from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _check_folds(labels: np.ndarray, parts: dict[str, np.ndarray], spec: DatasetSpec) -> None:
    if not spec.cv:
        return
    counts = np.bincount(labels[np.concatenate([parts["train"], parts["val"]])])
    if counts[counts > 0].max() < spec.cv:
        raise InputError(
            f"{spec.path}: {Opt('cv', spec.cv)} needs at least {spec.cv} training sequences of a "
            f"class, but the most frequent class has {counts.max()}; use fewer folds."
        )


def _scale(
    x: np.ndarray, lengths: np.ndarray, train: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise each feature over the training sequences' real steps; pad with PAD."""
    inside = np.arange(x.shape[1])[None, :] < lengths[:, None]
    steps = x[train][inside[train]]  # (real training steps, features)
    mean = steps.mean(axis=0)
    scale = steps.std(axis=0)
    scale[scale == 0] = 1.0
    scaled = np.where(inside[:, :, None], (x - mean) / scale, PAD).astype(np.float32)
    return scaled, mean.astype(np.float32), scale.astype(np.float32)
