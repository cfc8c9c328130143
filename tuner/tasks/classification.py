"""Sequence classification: a label for each whole sequence (padded steps
masked), with the options the literature tunes beside the recurrent stack
(per-sequence z-normalisation, LSTM-FCN's convolutional branch, the dimension
shuffle) and, on small sets, cross-validation and a top-K ensemble by default.

Data: tuner.data.sequences (`.npz` with X, y and optional lengths).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.config import SMALL_SET, SMALL_SET_ENSEMBLE
from tuner.errors import InputError, Opt
from tuner.model.params import CONV_KERNELS, CONV_WIDTHS, DEFAULTS, RECURRENT, TRAINING
from tuner.tasks.base import Task, register

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from tuner.data.spec import Dataset, DatasetInfo, DatasetSpec


class Classification(Task):
    """A label for each whole sequence."""

    name = "classification"
    default_space = "classification"
    metric = "log_loss"
    objective = "validation log loss"
    suffixes = (".npz",)
    # Sets are small: a round of several passes gives them their steps
    # (tuner.model.train.ROUND_TARGETS), and a batch of 16 (what the published
    # convolutional classifiers train with; batch norm needs it) is kept where it fits.
    min_steps = 1
    windowed = False
    reads = TRAINING | RECURRENT | {
        "attention", "seq_norm", "dim_shuffle", "conv_layers", "conv_filters", "pool",
    }  # fmt: skip

    def load(self, spec: DatasetSpec) -> Dataset:
        from tuner.data.sequences import load_sequences  # deferred: pandas, scikit-learn

        return load_sequences(spec)

    def window_rule(self, info: DatasetInfo) -> str:
        return "whole sequences (no window)"

    def default_ensemble(self, info: DatasetInfo) -> int:
        """SMALL_SET_ENSEMBLE on small sets selected on a validation split (a few
        dozen sequences choose the champion: a noisy choice)."""
        return SMALL_SET_ENSEMBLE if not info.cv and info.n_train < SMALL_SET else 0

    def shape(self, info: DatasetInfo) -> str:
        steps = "up to " if info.variable_length else ""
        return (
            f"{info.n_rows} sequences x {steps}{info.max_seq_len} steps x {info.n_features} "
            f"features, {info.n_classes} classes"
        )

    def build(self, params: Mapping[str, Any], info: DatasetInfo) -> keras.Model:
        """Sequences (padded steps masked) to class probabilities: sigmoid for two classes.

        Options beside the recurrent stack: per-sequence z-normalisation, average
        pooling of a long series by a factor (both branches read fewer steps), a
        convolutional branch concatenated with it (LSTM-FCN), and the dimension
        shuffle (the recurrent stack reads the transposed sequence: one step per
        feature, the whole series at each step); the last two only for fixed-length
        data, where there is no padding to mask.
        """
        import keras

        from tuner.data.sequences import PAD
        from tuner.model.blocks import EXACT, conv_branch, normalization, padded_standardisation
        from tuner.model.build import l2, recurrent_stack

        sequence = keras.Input((info.max_seq_len, info.n_features), name=self.input_name)
        x = sequence
        if params["seq_norm"] and info.variable_length:  # over the real steps, pads stay 0
            x = padded_standardisation(x)
        elif params["seq_norm"]:
            x = normalization("revin", x, n_targets=info.n_features).inputs
        if int(params["pool"]) > 1:  # long sequences (DatasetInfo.pool_choices)
            # Before the mask: a pooled step of padding alone stays exactly PAD (masked);
            # a real step beside the padding averages zeros in, as "same" convolution does.
            x = keras.layers.AveragePooling1D(int(params["pool"]), padding="same")(x)
        masked = keras.layers.Masking(mask_value=PAD)(x) if info.variable_length else x
        recurrent_in = keras.layers.Permute((2, 1))(x) if params["dim_shuffle"] else masked
        branches = [recurrent_stack(recurrent_in, params)]
        conv_layers = int(params["conv_layers"])
        if conv_layers:
            mask = getattr(masked, "_keras_mask", None) if info.variable_length else None
            branches.append(
                conv_branch(x, layers=conv_layers, filters=int(params["conv_filters"]), mask=mask)
            )
        x = keras.layers.Concatenate()(branches) if len(branches) > 1 else branches[0]
        two = info.n_classes == 2
        out = keras.layers.Dense(
            1 if two else info.n_classes,
            activation="sigmoid" if two else "softmax",
            kernel_regularizer=l2(params),
            name="proba",
            dtype=EXACT,
        )(x)
        return keras.Model(sequence, out, name="classifier")

    def compile_args(self, info: DatasetInfo) -> dict[str, Any]:
        import keras

        if info.n_classes == 2:
            loss, log_loss = keras.losses.BinaryCrossentropy(), keras.metrics.BinaryCrossentropy
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
            log_loss = keras.metrics.SparseCategoricalCrossentropy
        return {"loss": loss, "metrics": ["accuracy", log_loss(name="log_loss")]}

    def size_inputs(
        self, info: DatasetInfo, candidates: Mapping[str, Any], largest: Mapping[str, Any]
    ) -> tuple[int, int]:
        if candidates.get("dim_shuffle") == [True]:  # one step per feature
            return info.n_features, info.max_seq_len
        return info.max_seq_len, info.n_features

    def size_head(
        self, info: DatasetInfo, largest: Mapping[str, Any], width: int, *, batch: int, steps: int
    ) -> tuple[int, int]:
        """The convolutional branch (with batch norm) and the output layer."""
        weights, saved = 0, 0
        conv_layers = int(largest.get("conv_layers", 0))
        filters = int(largest.get("conv_filters", DEFAULTS["conv_filters"]))
        inputs = info.n_features
        for kernel, times in list(zip(CONV_KERNELS, CONV_WIDTHS, strict=True))[:conv_layers]:
            out = filters * times
            weights += kernel * inputs * out + out + 4 * out  # convolution, batch norm
            saved += 3 * batch * info.max_seq_len * out  # convolution, norm, activation
            inputs = out
        if conv_layers:
            width += inputs
        outputs = 1 if info.n_classes == 2 else info.n_classes
        return weights + (width + 1) * outputs, saved

    def respond(self, served: Any, request: Any, params: Mapping[str, Any]) -> pd.DataFrame:
        import pandas as pd

        from tuner.model.serving import classify

        values = request.to_numpy() if isinstance(request, pd.DataFrame) else request
        return classify(served, np.asarray(values, dtype=np.float32), source="request")

    def request_example(self, data: Any, seq_len: int) -> tuple[Any, dict[str, Any] | None]:
        """Two validation sequences, as long as the shorter one."""
        rows = data.parts["val"][:2]
        steps = int(min(data.lengths[rows]))
        return (data.x[rows, :steps] * data.scale + data.mean).astype(np.float32), None

    def served_signature(self, signature: Any) -> Any:
        """Sequences of any length up to `steps`; the feature count is checked by the
        model's own code, whose 400 says what the request should look like."""
        from mlflow.models import ModelSignature
        from mlflow.types.schema import Schema, TensorSpec

        tensor = signature.inputs.inputs[0]
        steps_free = TensorSpec(tensor.type, (-1, -1, -1), tensor.name)
        return ModelSignature(Schema([steps_free]), signature.outputs, signature.params)

    def predict(self, bundle: Any, data: Any, **options: Any) -> Any:
        from tuner.model.serving import classify

        return classify(bundle, np.asarray(data), lengths=options.get("lengths"))

    def predict_file(self, bundle: Any, path: Any, rows: Any) -> pd.DataFrame:
        """Labels and probabilities of the sequences of an `.npz` (its true labels
        beside them where it has `y`)."""
        from tuner.model.serving import check_labels, classify

        if path.suffix not in self.suffixes:
            raise InputError(
                f"{Opt('input', path)}: a classification model reads an .npz with X, not "
                f"{path.suffix!r}."
            )
        frame = classify(bundle, rows["X"], lengths=rows.get("lengths"), source=str(path))
        if "y" in rows:
            known = check_labels(bundle, rows["y"], source=str(path))
            frame.insert(1, "true_label", [bundle.preprocessing["classes"][i] for i in known])
        return frame

    def figure(self, model: Any, data: Any, test: Any, params: Mapping[str, Any], name: str) -> Any:
        from tuner.model import params as hparams
        from tuner.model.batches import predict_windows
        from tuner.report.model_figures import confusion

        pred = predict_windows(model, test, batch_size=hparams.TrialParams.of(params).batch_size)
        return confusion(pred, data, test, name)


CLASSIFICATION = register(Classification())
