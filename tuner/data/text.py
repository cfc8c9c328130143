"""Character language-model data: a UTF-8 text, split in reading order and encoded.

The vocabulary is the set of characters of the training part; index 0 stands
for any character it does not hold. A window of `seq_len` characters predicts
the next character at every position. Training windows do not overlap.
Held-out windows overlap by half a window and each held-out character is scored
once, in the window where it has the most context: its target there is kept,
elsewhere it is UNSCORED (skipped by the loss and the metrics). So every scored
character but those of the first window reads at least half a window of text
before it, as it does when the model generates; non-overlapping windows gave the
first characters of every window almost none (on `alice`, GRU 256 over 256
characters: 0.019 bits per character lower on validation, 0.013 on test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tuner.data.spec import (
    DatasetInfo,
    DatasetSpec,
    Windows,
    fingerprint,
    rolling_origin,
    split_borders,
)
from tuner.data.windows import SPLITS, check_seq_len, compact
from tuner.errors import InputError, Opt

UNKNOWN = "\x00"  # vocabulary entry 0: a character the training text does not hold
UNSCORED = -1  # a held-out target read as context only (Keras' `ignore_class`)


@dataclass(frozen=True, eq=False)
class TextData:
    """An encoded text with its vocabulary and split borders (in characters)."""

    spec: DatasetSpec
    codes: np.ndarray  # (characters,) int32 indices into vocab
    vocab: tuple[str, ...]
    borders: tuple[int, int, int]
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> DatasetInfo:
        """Under cross-validation the parts are the first fold's, the shortest."""
        cv = self.spec.cv or 0
        train_end, val_end, test_end = self.borders
        if cv:
            (train_end, val_end), test_end = rolling_origin(val_end, cv)[0], self.borders[2]
        parts = (train_end, val_end - train_end, test_end - self.borders[1])
        shortest = min(n for n in parts if n > 0)  # a fold has no test part
        return DatasetInfo(
            task="char_lm",
            n_features=1,
            n_rows=len(self.codes),
            n_train=train_end,
            max_seq_len=shortest - 1,
            lookback=self.spec.lookback,
            vocab_size=len(self.vocab),
            cv=cv,
        )

    def folds(self) -> list[TextData]:
        """Rolling-origin folds of contiguous text before the test part, with the
        training vocabulary (the encoding stays that of the whole training part)."""
        if not self.spec.cv:
            return []
        return [
            replace(self, spec=replace(self.spec, cv=0), borders=(train_end, val_end, val_end))
            for train_end, val_end in rolling_origin(self.borders[1], self.spec.cv)
        ]

    def preprocessing(self) -> dict[str, Any]:
        """What a model trained on this data needs to read new data (JSON-able)."""
        return {"task": "char_lm", "vocab": list(self.vocab)}

    def windows(self, seq_len: int) -> dict[str, Windows]:
        """x the characters, y the characters one step later: training windows side by
        side, held-out windows overlapping by half a window (the module's docstring)."""
        check_seq_len(seq_len, self)
        starts = (0, *self.borders[:2])
        out = {}
        for split, start, end in zip(SPLITS, starts, self.borders, strict=True):
            if end - start <= seq_len:  # a fold's empty test part
                empty = np.empty((0, seq_len), self.codes.dtype)
                out[split] = Windows(x=empty, y=empty)
                continue
            context = 0 if split == "train" else seq_len // 2
            chunks = sliding_window_view(self.codes[start:end], seq_len + 1)[:: seq_len - context]
            y = np.array(chunks[:, 1:]) if context else compact(chunks[:, 1:])  # array: writable
            if context:
                y[1:, :context] = UNSCORED  # scored in the window before, with less context
            out[split] = Windows(x=compact(chunks[:, :-1]), y=y)
        return out

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """Bits per character and next-character accuracy from logits (n, steps, vocab),
        over the scored targets (not UNSCORED)."""
        scored = y_true != UNSCORED
        logits = y_pred[scored].astype(np.float64)
        target = y_true[scored].astype(np.int64)
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        nll = log_z - np.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
        return {
            "bpc": float(nll.mean() / math.log(2)),
            "accuracy": float(np.mean(logits.argmax(-1) == target)),
        }

    def baselines(self) -> dict[str, dict[str, float]]:
        """Unigram frequencies of the training characters (add-one smoothed)."""
        k = len(self.vocab)
        counts = np.bincount(self.codes[: self.borders[0]], minlength=k) + 1.0
        log_p = np.log(counts / counts.sum())
        out = {}
        for split, start, end in zip(
            ("val", "test"), self.borders[:2], self.borders[1:], strict=True
        ):
            held_out = self.codes[start:end]
            out[f"unigram_{split}"] = {
                "bpc": float(-log_p[held_out].mean() / math.log(2)),
                "accuracy": float(np.mean(held_out == log_p.argmax())),
            }
        return out


def encode(text: str, vocab: tuple[str, ...]) -> np.ndarray:
    """Vocabulary indices of every character (0 where unknown), without a Python loop."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    known = np.array([ord(c) for c in vocab[1:]], dtype=np.uint32)  # sorted, as vocab is
    if not len(known):  # a training text of unknown characters alone
        return np.zeros(len(points), np.int32)
    pos = np.searchsorted(known, points)
    hit = known[np.minimum(pos, len(known) - 1)] == points
    return np.where(hit, pos + 1, 0).astype(np.int32)


MAX_TEXT_BYTES = 256 << 20  # a character model here trains on far less in any budget


def load_text(spec: DatasetSpec) -> TextData:
    """Read and decode the text, split it and encode it with the training vocabulary."""
    size = spec.path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise InputError(
            f"{spec.path}: the text has {size / 2**20:,.0f} MiB, more than the "
            f"{MAX_TEXT_BYTES >> 20} MiB a character model is tuned on here; give an excerpt."
        )
    raw = spec.path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{spec.path}: not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start} "
            f"cannot be decoded ({e.reason}); re-save the file as UTF-8."
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError(f"{spec.path}: the text is empty (only whitespace); give a text file.")
    borders = split_borders(len(text), spec, unit="characters")
    sizes = {"training": borders[0], "validation": borders[1] - borders[0]}
    sizes["test"] = borders[2] - borders[1]
    for name, size in sizes.items():
        if size < 2:
            raise InputError(
                f"{spec.path}: text too short: the {name} split has {size} characters, at least 2 "
                f"are needed; give a longer text or another {Opt('split')}."
            )
    vocab = (UNKNOWN, *sorted(set(text[: borders[0]]) - {UNKNOWN}))
    codes = encode(text[: borders[2]], vocab)
    return TextData(
        spec=spec,
        codes=codes,
        vocab=vocab,
        borders=borders,
        fingerprint=fingerprint(
            spec,
            characters=len(text),
            vocabulary=len(vocab),
            borders=borders,
        ),
    )
