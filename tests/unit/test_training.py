"""Variants build what they claim; training is seeded and learns nothing from noise."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd

from core.schema import TARGET
from core.training import build_model, fit_variant, predict_proba, split_rows
from core.variants import VARIANTS


def dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_baseline_architecture_is_the_original() -> None:
    model = build_model(VARIANTS["baseline"], 42)
    dense = dense_layers(model)
    assert [d.units for d in dense] == [10, 8, 1]
    assert [d.activation.__name__ for d in dense] == ["tanh", "tanh", "sigmoid"]
    assert all(d.kernel_regularizer is None for d in dense)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert model.count_params() == 42 * 10 + 10 + 10 * 8 + 8 + 8 + 1


def test_l2_variant_regularises_every_kernel() -> None:
    dense = dense_layers(build_model(VARIANTS["l2"], 20))
    assert [d.units for d in dense] == [10, 8, 1]
    for d in dense:
        assert isinstance(d.kernel_regularizer, keras.regularizers.L2)
        assert np.isclose(d.kernel_regularizer.l2, 0.01)


def test_batchnorm_variant_normalises_each_hidden_layer() -> None:
    model = build_model(VARIANTS["batchnorm"], 20)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNormalization", "Dense", "BatchNormalization", "Dense"]


def test_lr_schedule_drops_tenfold_after_epoch_10(clean_df: pd.DataFrame) -> None:
    spec = dataclasses.replace(VARIANTS["lr_schedule"], early_stopping=False, epochs=12)
    splits = split_rows(clean_df[TARGET].to_numpy(), 0)
    trained = fit_variant(spec, clean_df.iloc[splits.train], clean_df.iloc[splits.val], seed=0)
    lr = trained.history["learning_rate"]
    assert len(lr) == 12
    base = spec.learning_rate
    assert np.allclose(lr[:10], base) and np.allclose(lr[10:], base / 10)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(trained.history)


def test_same_seed_gives_the_same_model(clean_df: pd.DataFrame) -> None:
    splits = split_rows(clean_df[TARGET].to_numpy(), 0)
    train, val = clean_df.iloc[splits.train], clean_df.iloc[splits.val]
    spec = dataclasses.replace(VARIANTS["tuned"], epochs=3)
    a = fit_variant(spec, train, val, seed=5)
    b = fit_variant(spec, train, val, seed=5)
    np.testing.assert_array_equal(
        predict_proba(a.pipeline, a.model, val), predict_proba(b.pipeline, b.model, val)
    )


def test_splits_are_disjoint_and_stratified(clean_df: pd.DataFrame) -> None:
    y = clean_df[TARGET].to_numpy()
    s = split_rows(y, 3)
    assert not set(s.train) & set(s.val) and not set(s.train) & set(s.test) and not set(s.val) & set(s.test)
    assert len(s.train) + len(s.val) + len(s.test) == len(y)
    assert abs(y[s.test].mean() - y.mean()) < 0.02


def test_permuted_labels_learn_nothing(clean_df: pd.DataFrame) -> None:
    """Leakage guard: with labels shuffled, held-out accuracy sits near the majority rate."""
    rng = np.random.default_rng(0)
    df = clean_df.assign(**{TARGET: rng.permutation(clean_df[TARGET].to_numpy())})
    splits = split_rows(df[TARGET].to_numpy(), 0)
    for name in ("baseline", "tuned"):
        spec = dataclasses.replace(VARIANTS[name], epochs=30)
        trained = fit_variant(spec, df.iloc[splits.train], df.iloc[splits.val], seed=0)
        test = df.iloc[splits.test]
        acc = ((predict_proba(trained.pipeline, trained.model, test) >= 0.5) == test[TARGET]).mean()
        majority = max(test[TARGET].mean(), 1 - test[TARGET].mean())
        assert acc <= majority + 0.05, f"{name} learned from shuffled labels: {acc:.3f}"
