"""Training: splits, Keras model construction from a variant spec, fitting with progress.

Splits are stratified and seeded: 20% of the file is the test split (never used for any
choice), 20% of the rest the validation split (early stopping, calibration). The
preprocessor is fitted on the training split only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core.datasets import Splits, split_rows
from core.features import frame_names
from core.fitting import make_preprocessor
from core.schema import TARGET
from core.variants import VariantSpec

# progress(variant, epoch, max_epochs, logs): called after every epoch.
Progress = Callable[[str, int, int, dict], None]


def grouped_split(df: pd.DataFrame, seed: int = 0) -> Splits:
    """Split by organisation NAME: the test split holds only organisations never trained on."""
    return split_rows(df[TARGET].to_numpy(), seed, groups=frame_names(df))


def set_seed(seed: int) -> None:
    """Same seed, same model: seeds Python, NumPy and TensorFlow, deterministic ops."""
    keras.utils.set_random_seed(seed)
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass


def build_model(spec: VariantSpec, n_inputs: int) -> keras.Model:
    """The Keras network a variant declares (uncompiled)."""
    reg = keras.regularizers.L2(spec.l2) if spec.l2 else None
    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_inputs,), name="features")]
    for i, (units, activation) in enumerate(spec.hidden, start=1):
        layers.append(
            keras.layers.Dense(units, activation=activation, kernel_regularizer=reg, name=f"hidden{i}")
        )
        if spec.batchnorm:
            layers.append(keras.layers.BatchNormalization(name=f"batchnorm{i}"))
        if spec.dropout:
            layers.append(keras.layers.Dropout(spec.dropout, name=f"dropout{i}"))
    layers.append(keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=reg, name="output"))
    return keras.Sequential(layers, name=spec.name)


class _EpochLogger(keras.callbacks.Callback):
    """Adds the learning rate to each epoch's logs and reports progress."""

    def __init__(self, variant: str, epochs: int, progress: Progress | None) -> None:
        super().__init__()
        self.variant = variant
        self.epochs = epochs
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.progress:
            self.progress(self.variant, epoch + 1, self.epochs, dict(logs))


@dataclass
class TrainedModel:
    """A fitted variant: preprocessing, network, and how training went."""

    spec: VariantSpec
    pipeline: Pipeline
    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float
    temperature: float = 1.0
    extra: dict = field(default_factory=dict)


def fast_scorer(pipeline: Pipeline, model: keras.Model):
    """The sparse NumPy scorer for this model, or None when its shape is not supported."""
    from core.network import FastScorer, Network

    try:
        return FastScorer(pipeline, Network.from_model(model))
    except (TypeError, KeyError, AttributeError):
        return None


def predict_proba(
    pipeline: Pipeline, model: keras.Model, df: pd.DataFrame, batch: int = 100_000, scorer: object = None
) -> np.ndarray:
    """Success probabilities for validated rows, in bounded-size batches (no refitting).

    Uses the sparse NumPy forward pass (same numbers as Keras to float rounding, far less
    memory for wide inputs); falls back to Keras for networks it does not know.
    """
    scorer = scorer or fast_scorer(pipeline, model)
    out = np.empty(len(df), dtype=np.float64)
    for start in range(0, len(df), batch):
        rows = df.iloc[start : start + batch]
        if scorer is not None:
            out[start : start + len(rows)] = scorer.predict(rows)
        else:
            encoded = pipeline.transform(rows).astype(np.float32)
            out[start : start + len(rows)] = predict_matrix(model, encoded)
    return out


def predict_matrix(model: keras.Model, x: np.ndarray, batch: int = 65_536) -> np.ndarray:
    """Forward pass without ``model.predict``'s per-call overhead."""
    parts = [
        keras.ops.convert_to_numpy(model(x[i : i + batch], training=False)).reshape(-1)
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature that minimises validation log loss (1-D search; monotone, keeps ranking)."""
    grid = np.exp(np.linspace(np.log(0.3), np.log(3.0), 121))

    def nll(t: float) -> float:
        z = logits / t
        return float(np.mean(np.logaddexp(0, z) - y * z))

    return float(min(grid, key=nll))


def apply_temperature(model: keras.Model, temperature: float) -> None:
    """Fold 1/T into the output layer so the saved model is calibrated by itself."""
    out = model.get_layer("output")
    kernel, bias = out.get_weights()
    out.set_weights([kernel / temperature, bias / temperature])


def fit_variant(
    spec: VariantSpec,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame | None,
    seed: int = 0,
    progress: Progress | None = None,
    epochs: int | None = None,
) -> TrainedModel:
    """Fit the preprocessor on ``train_df`` only, then the network with early stopping.

    ``val_df=None`` trains for a fixed number of epochs with no validation (final refit).
    """
    started = time.perf_counter()
    set_seed(seed)
    pipeline = make_preprocessor(spec.scale, **spec.encoder, random_state=seed)
    x_train = pipeline.fit_transform(train_df, train_df[TARGET].to_numpy()).astype(np.float32)
    y_train = train_df[TARGET].to_numpy().astype(np.float32)
    validation = None
    if val_df is not None:
        x_val = pipeline.transform(val_df).astype(np.float32)
        y_val = val_df[TARGET].to_numpy().astype(np.float32)
        validation = (x_val, y_val)
    model = build_model(spec, x_train.shape[1])
    model.compile(
        optimizer=keras.optimizers.Adam(spec.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    max_epochs = epochs or spec.epochs
    callbacks: list[keras.callbacks.Callback] = []
    if spec.lr_drop_epoch is not None:
        base, drop, factor = spec.learning_rate, spec.lr_drop_epoch, spec.lr_drop_factor
        callbacks.append(
            keras.callbacks.LearningRateScheduler(lambda e, _lr: base if e < drop else base / factor)
        )
    if spec.early_stopping and validation is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=spec.patience, restore_best_weights=True
            )
        )
    callbacks.append(_EpochLogger(spec.name, max_epochs, progress))
    hist = model.fit(
        x_train,
        y_train,
        validation_data=validation,
        epochs=max_epochs,
        batch_size=spec.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    if spec.early_stopping and "val_loss" in history:
        best_epoch = int(np.argmin(history["val_loss"])) + 1
    else:
        best_epoch = len(history["loss"])
    temperature = 1.0
    if spec.calibrate and validation is not None:
        p_val = np.clip(predict_matrix(model, x_val), 1e-7, 1 - 1e-7)
        temperature = _fit_temperature(np.log(p_val / (1 - p_val)), y_val)
        apply_temperature(model, temperature)
    return TrainedModel(
        spec, pipeline, model, history, best_epoch, time.perf_counter() - started, temperature
    )


def refit_full(
    trained: TrainedModel, frame: pd.DataFrame, seed: int = 0, progress: Progress | None = None
) -> TrainedModel:
    """Refit a variant on ``frame`` (every row but the fixed evaluation rows: training and
    validation) for the evaluated best epoch count, same temperature. The served network then
    learns from the validation rows too, and its own test figures are measured on the evaluation
    rows, which it never sees."""
    spec = dataclasses.replace(trained.spec, early_stopping=False, calibrate=False, epochs=trained.best_epoch)
    final = fit_variant(spec, frame, None, seed, progress)
    apply_temperature(final.model, trained.temperature)
    final_fit = {"rows": len(frame), "epochs": trained.best_epoch, "seconds": round(final.seconds, 2)}
    return dataclasses.replace(
        final,
        spec=trained.spec,
        temperature=trained.temperature,
        best_epoch=trained.best_epoch,
        history=trained.history,
        seconds=trained.seconds + final.seconds,
        extra={"final_fit": final_fit},
    )
