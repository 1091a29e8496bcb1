"""Threshold and budget selection on validated numbers, with the facts staff see."""

from __future__ import annotations

import numpy as np
import pytest

from core.decisions import Rule, apply_rule, by_budget, by_threshold
from core.errors import BadRequest

P = np.array([0.9, 0.95, 0.4, 0.8, 0.3])
ASK = np.array([5000.0, 20000.0, 5000.0, 100000.0, 1000.0])


def test_threshold() -> None:
    sel = by_threshold(P, 0.8)
    assert sel.mask.tolist() == [True, True, False, True, False]
    assert sel.summary(P, ASK) == {
        "selected": 3,
        "not_selected": 2,
        "total_ask_selected": 125000.0,
        "expected_successes": pytest.approx(2.65),
    }


def test_budget_by_probability_skips_what_does_not_fit() -> None:
    sel = by_budget(P, ASK, 30_000, "probability")
    # 0.95 (20,000), 0.9 (5,000); 100,000 does not fit; 0.4 (5,000) still fits; 1,000 would exceed
    assert sel.mask.tolist() == [True, True, True, False, False]
    assert sel.summary(P, ASK)["total_ask_selected"] == 30_000
    assert sel.cut_probability == 0.8 and sel.last_funded == 2 and sel.money_left == 0.0


def test_budget_by_value_per_dollar_prefers_small_asks() -> None:
    sel = by_budget(P, ASK, 6_000, "value_per_dollar")
    assert sel.mask.tolist() == [True, False, False, False, True]
    assert sel.summary(P, ASK)["total_ask_selected"] == 6_000


def test_zero_budget_selects_nothing() -> None:
    sel = by_budget(P, ASK, 0)
    assert sel.mask.sum() == 0 and sel.cut_probability == 0.95 and sel.last_funded is None


def test_equal_chances_straddling_the_cut_are_counted() -> None:
    p = np.array([0.7, 0.7, 0.7, 0.2])
    sel = by_budget(p, np.array([10.0, 10.0, 10.0, 1.0]), 21)
    assert sel.mask.tolist() == [True, True, False, True]
    assert sel.straddling == 3


def test_rules_are_checked_and_keyed() -> None:
    with pytest.raises(BadRequest):
        Rule("threshold", threshold=1.5)
    with pytest.raises(BadRequest):
        Rule("budget", budget=-1)
    assert Rule("threshold", threshold=0.5).key() == "threshold:0.500000"
    assert Rule("budget", budget=1000, rank_by="value_per_dollar").key() == "budget:1000.00:value_per_dollar"
    assert apply_rule(Rule("threshold", threshold=0.9), P, ASK).mask.tolist() == [
        True,
        True,
        False,
        False,
        False,
    ]
