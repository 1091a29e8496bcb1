"""Turning chances into a shortlist: by threshold, or by a total budget.

Decisions read the validated numbers (probabilities and ASK_AMT as parsed by validation),
never text re-parsed from a results table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import BadRequest

RANK_BY = {
    "probability": "highest chance first",
    "value_per_dollar": "highest chance per dollar first",
}


@dataclass(frozen=True)
class Rule:
    """How applicants are chosen: every chance at or above a threshold, or a budget spent in rank order."""

    mode: str  # "threshold" | "budget"
    threshold: float | None = None
    budget: float | None = None
    rank_by: str = "probability"

    def __post_init__(self) -> None:
        if self.mode == "threshold":
            if self.threshold is None or not 0.0 <= float(self.threshold) <= 1.0:
                raise BadRequest("A threshold rule needs a threshold between 0 and 1.")
        elif self.mode == "budget":
            if self.budget is None or not float(self.budget) >= 0:
                raise BadRequest("A budget rule needs a budget of 0 or more.")
            if self.rank_by not in RANK_BY:
                raise BadRequest(f"Rank by one of {', '.join(RANK_BY)}.")
        else:
            raise BadRequest("A rule is 'threshold' or 'budget'.")

    def describe(self) -> str:
        if self.mode == "threshold":
            return f"threshold {float(self.threshold):.2f}"
        return f"budget ${float(self.budget):,.0f}, {RANK_BY[self.rank_by]}"

    def key(self) -> str:
        """A stable text identity of the rule (for 'already recorded' checks)."""
        if self.mode == "threshold":
            return f"threshold:{float(self.threshold):.6f}"
        return f"budget:{float(self.budget):.2f}:{self.rank_by}"


@dataclass
class Selection:
    """Which rows are recommended under a rule, and the facts staff look at."""

    mask: np.ndarray
    rule: Rule
    # budget mode: the chance of the first applicant in rank order the budget could not fund, the
    # position of the last one it funded, the money left
    cut_probability: float | None = None
    last_funded: int | None = None
    money_left: float | None = None
    straddling: int = 0  # applicants with exactly the cut chance on both sides of the line

    @property
    def mode(self) -> str:
        return self.rule.mode

    @property
    def threshold(self) -> float | None:
        return self.rule.threshold

    @property
    def budget(self) -> float | None:
        return self.rule.budget

    def summary(self, probabilities: np.ndarray, asks: np.ndarray) -> dict:
        probabilities = np.asarray(probabilities, dtype=float)
        asks = np.asarray(asks, dtype=float)
        return {
            "selected": int(self.mask.sum()),
            "not_selected": int((~self.mask).sum()),
            "total_ask_selected": float(asks[self.mask].sum()),
            "expected_successes": float(probabilities[self.mask].sum()),
        }


def by_threshold(probabilities: np.ndarray, threshold: float) -> Selection:
    """Recommend every applicant whose chance reaches the threshold."""
    p = np.asarray(probabilities, dtype=float)
    return Selection(p >= threshold, Rule("threshold", threshold=float(threshold)))


def by_budget(
    probabilities: np.ndarray, asks: np.ndarray, budget: float, rank_by: str = "probability"
) -> Selection:
    """Fund applicants in rank order while the running total of ASK_AMT stays within budget.

    An ask that does not fit is skipped and the next ones are still tried.
    ``rank_by="value_per_dollar"`` ranks by chance per dollar asked (small, likely asks first).
    Ties: smaller ask first, then file order.
    """
    rule = Rule("budget", budget=float(budget), rank_by=rank_by)
    p = np.asarray(probabilities, dtype=float)
    ask = np.asarray(asks, dtype=float)
    key = p if rank_by == "probability" else p / np.maximum(ask, 1.0)
    order = np.lexsort((np.arange(len(p)), ask, -key))
    mask = np.zeros(len(p), dtype=bool)
    spent = 0.0
    last = first_skipped = None
    for i in order:
        if spent + ask[i] <= budget:
            mask[i] = True
            spent += ask[i]
            last = int(i)
        elif first_skipped is None:
            first_skipped = int(i)
    # the line: the chance of the first applicant in rank order the budget could not fund
    cut = float(p[first_skipped]) if first_skipped is not None else None
    straddling = 0
    if cut is not None:
        tied = p == cut
        straddling = int(tied.sum()) if mask[tied].any() and (~mask[tied]).any() else 0
    return Selection(mask, rule, cut, last, float(budget - spent), straddling)


def apply_rule(rule: Rule, probabilities: np.ndarray, asks: np.ndarray) -> Selection:
    if rule.mode == "threshold":
        return by_threshold(probabilities, float(rule.threshold))
    return by_budget(probabilities, asks, float(rule.budget), rule.rank_by)
