"""The attribution engine is exact: additivity, brute force, textbook properties, shap parity."""

from __future__ import annotations

from itertools import combinations
from math import factorial
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import FunctionTransformer

from core.card import ModelCard
from core.explain import (
    FieldExplainer,
    explanation_frame,
    get_dependence_df,
    get_distribution_df,
    get_importance_df,
    get_waterfall_df,
    reason_codes,
    shap_reference,
)
from core.network import Network
from core.registry import Bundle
from core.schema import validate
from core.synthetic import sample_applicants
from tests.conftest import bundle_of

FIELDS = ["A", "B", "C", "D"]


class ToyBundle(Bundle):
    """A bundle whose fields are plain numeric columns A..D (one column each, no scaler)."""

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        x = self.transform(df).astype(np.float64)
        return self.network.from_first(x @ self.network.w1 + self.network.b1)


def toy_bundle(model: keras.Model) -> Bundle:
    pipe = FunctionTransformer(lambda df: df[FIELDS].to_numpy(dtype=np.float32))
    card = ModelCard(variant="toy", version="t", created="", feature_fields=tuple(FIELDS))
    return ToyBundle(card, Path("."), {}, pipe, Network.from_model(model))


def random_net(seed: int, hidden: tuple[int, ...] = (6, 5)) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(shape=(len(FIELDS),))]
    layers += [keras.layers.Dense(h, activation="tanh") for h in hidden]
    layers += [keras.layers.BatchNormalization(), keras.layers.Dense(1, activation="sigmoid")]
    model = keras.Sequential(layers)
    bn = model.layers[-2]
    bn.set_weights([np.full(5, 1.3), np.full(5, -0.2), np.full(5, 0.1), np.full(5, 0.7)])
    return model


def brute_force(bundle: Bundle, x: pd.Series, background: pd.DataFrame) -> np.ndarray:
    """Shapley values by definition: all coalitions, v(S) = mean_b f(x_S, b_rest)."""
    n = len(FIELDS)

    def v(subset: tuple[int, ...]) -> float:
        frame = background.copy()
        for j in subset:
            frame[FIELDS[j]] = x[FIELDS[j]]
        return float(bundle.predict_proba(frame).mean())

    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for s in combinations(others, size):
                w = factorial(size) * factorial(n - size - 1) / factorial(n)
                phi[i] += w * (v(tuple(sorted((*s, i)))) - v(s))
    return phi


def toy_rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    # few distinct values so applicants share fields with background rows (null players)
    return pd.DataFrame({f: rng.choice([-1.0, 0.0, 0.5, 2.0], size=n) for f in FIELDS})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force_shapley(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bundle = toy_bundle(random_net(seed))
    background, applicants = toy_rows(rng, 12), toy_rows(rng, 5)
    attr = FieldExplainer(bundle, background).explain(applicants)
    for i in range(len(applicants)):
        np.testing.assert_allclose(
            attr.values.iloc[i].to_numpy(), brute_force(bundle, applicants.iloc[i], background), atol=1e-6
        )


def test_additive_model_gives_each_field_its_own_contribution() -> None:
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1, activation="linear")])
    w = np.array([[0.3], [-0.2], [0.0], [0.05]])
    model.layers[0].set_weights([w, np.array([0.4])])
    rng = np.random.default_rng(3)
    background, applicants = toy_rows(rng, 20), toy_rows(rng, 8)
    attr = FieldExplainer(toy_bundle(model), background).explain(applicants)
    expected = (applicants[FIELDS].to_numpy() - background[FIELDS].to_numpy().mean(axis=0)) * w[:, 0]
    np.testing.assert_allclose(attr.values.to_numpy(), expected, atol=1e-9)
    assert np.all(np.abs(attr.values["C"]) < 1e-12), "an ignored field must get 0"


def test_interchangeable_fields_get_equal_values() -> None:
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(3, activation="tanh"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    w1 = np.random.default_rng(0).normal(size=(4, 3))
    w1[1] = w1[0]  # A and B enter the network identically
    model.layers[0].set_weights([w1, np.zeros(3)])
    rng = np.random.default_rng(5)
    background, applicants = toy_rows(rng, 15), toy_rows(rng, 6)
    background["B"] = background["A"]
    applicants["B"] = applicants["A"]
    attr = FieldExplainer(toy_bundle(model), background).explain(applicants)
    np.testing.assert_allclose(attr.values["A"], attr.values["B"], atol=1e-12)


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return validate(sample_applicants(60, random_state=8).astype(str)).accepted


@pytest.mark.parametrize("variant", ["baseline", "batchnorm", "tuned"])
def test_real_bundles_are_additive_and_deterministic(models_dir: Path, applicants, variant: str) -> None:
    bundle = bundle_of(models_dir, variant)
    attr = FieldExplainer(bundle).explain(applicants)
    p = bundle.predict_proba(applicants)
    np.testing.assert_allclose(attr.base_value + attr.values.sum(axis=1), p, atol=1e-5)
    again = FieldExplainer(bundle_of(models_dir, variant)).explain(applicants)
    np.testing.assert_array_equal(attr.values.to_numpy(), again.values.to_numpy())
    assert ("NAME" in attr.fields) == bundle.card.uses_name
    assert "EIN" not in attr.fields and "IS_SUCCESSFUL" not in attr.fields


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_the_in_place_forward_pass_gives_the_same_numbers(activation: str) -> None:
    """``from_first`` with a Scratch (what explaining uses) equals the plain pass bit for bit, for
    every activation and a batch-norm layer, also when a smaller block reuses a larger one's arrays."""
    from core.network import Scratch

    rng = np.random.default_rng(3)
    tail = [
        ("dense", (rng.normal(size=(6, 5)), rng.normal(size=5), activation)),
        ("affine", (rng.normal(size=5), rng.normal(size=5))),
        ("dense", (rng.normal(size=(5, 1)), rng.normal(size=1), "sigmoid")),
    ]
    net = Network(rng.normal(size=(4, 6)), rng.normal(size=6), activation, tail)
    scratch = Scratch()
    for shape in [(7, 8, 6), (3, 2, 6), (9, 6)]:
        z1 = rng.normal(size=shape) * 3
        expected = net.from_first(z1)
        np.testing.assert_array_equal(net.from_first(z1.copy(), scratch), expected)


@pytest.mark.parametrize("variant", ["baseline", "tuned"])
def test_block_size_does_not_change_the_attributions(
    models_dir: Path, applicants, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.explain

    bundle = bundle_of(models_dir, variant)
    whole = FieldExplainer(bundle).explain(applicants).values.to_numpy()
    monkeypatch.setattr(core.explain, "MAX_ROWS_PER_BLOCK", 64)  # many small blocks, arrays reused
    blocks = FieldExplainer(bundle).explain(applicants).values.to_numpy()
    # BLAS may round a block of another shape in its last bit; a misplaced block would differ by far more
    np.testing.assert_allclose(blocks, whole, rtol=1e-12, atol=1e-15)


def test_matches_shap_exact_explainer(models_dir: Path, applicants) -> None:
    bundle = bundle_of(models_dir, "tuned")
    background = bundle.background().iloc[:8]
    ours = FieldExplainer(bundle, background).explain(applicants.iloc[:2])
    theirs = shap_reference(bundle, applicants.iloc[:2], background)
    np.testing.assert_allclose(ours.values.to_numpy(), theirs.values, atol=1e-6)
    np.testing.assert_allclose(ours.base_value, theirs.base_values[0], atol=1e-6)


def test_reasons_and_summaries(models_dir: Path, applicants) -> None:
    bundle = bundle_of(models_dir, "tuned")
    attr = FieldExplainer(bundle).explain(applicants)
    reasons = reason_codes(attr)
    assert len(reasons) == len(applicants)
    assert any(" the chance by " in r for r in reasons)
    assert all(len([p for p in r.split("; ") if p]) <= 3 for r in reasons)
    blank = reason_codes(FieldExplainer(bundle).explain(applicants.iloc[:3].assign(NAME="")))
    assert all("NAME" not in r for r in blank)
    assert any("no organisation name (first-time organisation, no record)" in r for r in blank), blank
    # NAME is described by what it stands for, never shown raw
    named = applicants.iloc[:20]
    seen = {" ".join(str(n).upper().split()) for n in named["NAME"].iloc[:10]}
    texts = reason_codes(FieldExplainer(bundle).explain(named), top=10, seen_names=seen)
    records = {" ".join(str(named["NAME"].iloc[0]).upper().split()): (9.0, 12)}
    with_record = reason_codes(FieldExplainer(bundle).explain(named.iloc[:1]), top=10, records=records)[0]
    assert "this organisation's record (12 earlier applications, 75% successful)" in with_record
    for text, name in zip(texts, named["NAME"]):
        assert str(name) not in text
        known = " ".join(str(name).upper().split()) in seen
        assert ("this organisation's record of earlier applications" in text) == known, text
        assert ("first-time organisation (no record of its own" in text) == (not known), text
    nameless = reason_codes(FieldExplainer(bundle).explain(applicants.iloc[:3].drop(columns=["NAME"])))
    assert len(nameless) == 3
    imp = get_importance_df(attr)
    assert list(imp.columns[:3]) == ["field", "label", "mean_abs"] and imp["mean_abs"].is_monotonic_decreasing
    dist = get_distribution_df(attr)
    assert len(dist) == len(applicants) * len(attr.fields)
    dep = get_dependence_df(attr, "ASK_AMT")
    assert len(dep) == len(applicants) and dep["value"].dtype == float
    wf = get_waterfall_df(attr, 0)
    assert wf["attribution"].abs().is_monotonic_decreasing
    frame = explanation_frame(applicants, attr)
    assert {"base_value", "success_probability", "reasons", *[f"shap_{f}" for f in attr.fields]} <= set(frame)
    assert attr.to_shap().values.shape == (len(applicants), len(attr.fields))
