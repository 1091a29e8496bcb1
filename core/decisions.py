"""Turning scores into a shortlist: by threshold, or by a total budget."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.schema import parse_amounts
from core.scoring import PROBABILITY

SELECTED = "selected"
RANK_BY = {
    "probability": "highest probability first",
    "value_per_dollar": "highest probability per dollar first",
}


@dataclass
class Selection:
    """Which scored rows are recommended, and the totals staff look at."""

    mask: np.ndarray
    mode: str
    threshold: float | None = None
    budget: float | None = None
    rank_by: str | None = None

    def summary(self, scored: pd.DataFrame) -> dict:
        return {
            "selected": int(self.mask.sum()),
            "not_selected": int((~self.mask).sum()),
            "total_ask_selected": float(ask_amounts(scored)[self.mask].sum()),
            "expected_successes": float(scored.loc[self.mask, PROBABILITY].sum()),
        }


def ask_amounts(scored: pd.DataFrame) -> np.ndarray:
    """ASK_AMT as numbers whatever text form the upload used ('$1,200' too), as validation reads it."""
    return parse_amounts(scored["ASK_AMT"].astype(str)).fillna(0).to_numpy(dtype=float)


def by_threshold(scored: pd.DataFrame, threshold: float) -> Selection:
    """Recommend every applicant whose probability reaches the threshold."""
    return Selection(scored[PROBABILITY].to_numpy() >= threshold, "threshold", threshold=threshold)


def by_budget(scored: pd.DataFrame, budget: float, rank_by: str = "probability") -> Selection:
    """Fund applicants in rank order while the running total of ASK_AMT stays within budget.

    ``rank_by="value_per_dollar"`` ranks by probability per dollar asked (small, likely
    asks first); an ask that does not fit is skipped and the next ones are still tried.
    """
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}")
    p = scored[PROBABILITY].to_numpy(dtype=float)
    ask = ask_amounts(scored)
    key = p if rank_by == "probability" else p / np.maximum(ask, 1.0)
    order = np.lexsort((ask, -key))  # ties: smaller ask first
    mask = np.zeros(len(scored), dtype=bool)
    spent = 0.0
    for i in order:
        if spent + ask[i] <= budget:
            mask[i] = True
            spent += ask[i]
    return Selection(mask, "budget", budget=float(budget), rank_by=rank_by)


def with_decisions(scored: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """Scored rows plus the recommendation column, most likely first."""
    out = scored.copy()
    out[SELECTED] = selection.mask.astype(int)
    return out.sort_values(PROBABILITY, ascending=False, kind="stable")
