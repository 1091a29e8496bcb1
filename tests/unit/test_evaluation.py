"""Evaluation numbers, paired tests and the grouped split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import evaluation
from core.errors import BadRequest
from core.features import normalise_name
from core.schema import TARGET
from core.training import grouped_split


def test_metrics_on_a_known_case() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = evaluation.classification_metrics(y, p)
    assert m["accuracy"] == 0.5 and m["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert m["roc_auc"] == 0.75 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert np.isclose(m["brier"], np.mean((p - y) ** 2))


def test_ece_is_zero_when_calibrated_and_large_when_not() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert evaluation.expected_calibration_error(y, p) < 0.01
    assert evaluation.expected_calibration_error(y, np.clip(p * 0.5, 0, 1)) > 0.2
    bins = evaluation.calibration_bins(y, p)
    assert len(bins) == 10 and sum(b["count"] for b in bins) == p.size


def test_curves_are_thinned_and_bounded() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    curves = evaluation.curve_points(y, rng.uniform(size=5000))
    assert len(curves["roc"]["fpr"]) <= 200 and curves["roc"]["fpr"][0] == 0 and curves["roc"]["tpr"][-1] == 1


def test_mcnemar_and_bootstrap() -> None:
    y = np.array([1] * 100)
    a = np.array([1] * 90 + [0] * 10)
    b = np.array([1] * 70 + [0] * 30)
    mc = evaluation.mcnemar(y, a, b)
    assert mc["only_a_right"] == 20 and mc["only_b_right"] == 0 and mc["p_value"] < 1e-4
    boot = evaluation.bootstrap_accuracy_difference(y, a, b)
    assert (
        np.isclose(boot["difference"], 0.2) and boot["ci_low"] < 0.2 < boot["ci_high"] and boot["ci_low"] > 0
    )
    assert evaluation.mcnemar(y, a, a)["p_value"] == 1.0


def test_compare_pair_needs_the_same_rows() -> None:
    base = pd.DataFrame({"row": [1, 2, 3], TARGET: [1, 0, 1], "success_probability": [0.9, 0.2, 0.4]})
    other = base.assign(success_probability=[0.9, 0.7, 0.6])
    pair = evaluation.compare_pair("a", base, "b", other)
    assert list(pair["disagreements"][TARGET]) == [0, 1]
    assert {"p_a", "p_b"} <= set(pair["disagreements"].columns)
    with pytest.raises(BadRequest, match="different seeds"):
        evaluation.compare_pair("a", base, "b", other.assign(row=[4, 5, 6]))


def test_grouped_split_keeps_organisations_on_one_side(clean_df: pd.DataFrame) -> None:
    s = grouped_split(clean_df, seed=3)
    names = normalise_name(clean_df["NAME"])
    assert not set(names.iloc[s.test]) & set(names.iloc[np.concatenate([s.train, s.val])])
    assert len(s.train) + len(s.val) + len(s.test) == len(clean_df)
