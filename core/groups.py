"""Groups and weak spots: who a decision funds, group by group, and where the model errs most.

* :func:`group_rates` — one metric function, many groups (after Fairlearn's ``MetricFrame``): for each
  application field (and first-time vs repeat organisation) the rows, recommended, selection rate and
  its ratio to the highest group's rate (flagged below 0.8, the four-fifths rule, only for groups of
  at least the minimum size), mean chance; with outcomes also the success rate, accuracy, true- and
  false-positive rates and the calibration gap. Every rate has a 95% Wilson interval. Values with
  fewer rows than the minimum are pooled as "other".
* :func:`weak_spots` — on labelled rows, the slices (one field value, or two values of two fields)
  with at least the minimum size whose error rate stands furthest above the overall rate, ranked by
  the strength of the evidence (a one-sided binomial z-score, so tiny noisy slices do not win on raw
  rates), with the lift and a 95% interval; slices overlapping a better-ranked one (Jaccard > 0.5)
  are merged into it; the top 10.
* Cohorts — a weak spot (or any rule) saved by name filters Compare and Explain to its rows.

What these figures can and cannot show: a low ratio says the decision selects a group less often,
not why, and not that the decision is unfair (groups can differ in their applications); small
groups are noisy, which is why the intervals and the minimum size are there.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import config
from core.errors import BadRequest
from core.schema import FIELD_LABELS, REQUIRED_FIELDS

FIRST_TIME = "first_time"
GROUP_FIELDS = [*REQUIRED_FIELDS, FIRST_TIME]
OTHER = "other"
FOUR_FIFTHS = 0.8
MIN_GROUP = 30
MIN_SLICE = 50
TOP_SLICES = 10
MERGE_JACCARD = 0.5
RANKINGS = ("z", "lower bound")  # the binomial z-score (up to a constant), or the interval's lower end
Z95 = 1.959963984540054
# ASK_AMT bins as this tool writes them: (label, upper bound inclusive)
ASK_BINS = [
    ("5000", 5_000),
    ("5001-25000", 25_000),
    ("25001-100000", 100_000),
    ("100001-1M", 1_000_000),
    ("1M-10M", 10_000_000),
    ("over 10M", math.inf),
]


def ask_bin(amounts: pd.Series | np.ndarray) -> np.ndarray:
    """ASK_AMT as this tool's bins (labels above)."""
    values = np.asarray(amounts, dtype=float)
    edges = np.array([b for _, b in ASK_BINS[:-1]])
    labels = np.array([label for label, _ in ASK_BINS], dtype=object)
    return labels[np.searchsorted(edges, values, side="left")]


def slice_values(features: pd.DataFrame, first_time: np.ndarray | None) -> pd.DataFrame:
    """Every grouping field of validated rows as text, as groups and cohorts name them: fields as
    written, ASK_AMT in bins, ``first_time`` "1" for organisations absent from the model's training
    data, else "0"."""
    out = {}
    for f in REQUIRED_FIELDS:
        if f == "ASK_AMT":
            out[f] = ask_bin(features[f])
        elif f == "STATUS":
            out[f] = pd.to_numeric(features[f], errors="coerce").fillna(-1).astype(int).astype(str).to_numpy()
        else:
            out[f] = features[f].astype(str).to_numpy()
    if first_time is not None:
        out[FIRST_TIME] = np.where(np.asarray(first_time, dtype=bool), "1", "0")
    # categories: a 200,000-row batch's groups take a few MB, not one Python string per cell
    return pd.DataFrame({k: pd.Categorical(v) for k, v in out.items()}, index=features.index)


def wilson(successes: float, n: int) -> tuple[float | None, float | None]:
    """95% Wilson score interval of a proportion (None for no rows)."""
    if n <= 0:
        return None, None
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)


def _rate(successes: float, n: int) -> float | None:
    return round(successes / n, 6) if n else None


# -- group rates -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupRate:
    field: str
    value: str
    n: int
    recommended: int
    selection_rate: float
    selection_low: float | None
    selection_high: float | None
    ratio_to_highest: float | None
    flag: bool
    mean_chance: float
    small: bool  # fewer rows than the minimum size: shown, never flagged, never the reference
    labelled: int = 0
    success_rate: float | None = None
    success_low: float | None = None
    success_high: float | None = None
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    tpr: float | None = None
    tpr_low: float | None = None
    tpr_high: float | None = None
    fpr: float | None = None
    fpr_low: float | None = None
    fpr_high: float | None = None
    calibration_gap: float | None = None  # mean chance minus success rate

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GroupReport:
    """Group rates of one decision, field by field, and the flags in words."""

    groups: list[GroupRate]
    highest: dict[str, str]  # field -> the value with the highest selection rate (of sizeable groups)
    min_size: int
    sentences: list[str] = field(default_factory=list)

    def table(self, field_name: str | None = None) -> pd.DataFrame:
        rows = [g.to_dict() for g in self.groups if field_name is None or g.field == field_name]
        frame = pd.DataFrame(rows, columns=list(GroupRate.__dataclass_fields__))
        frame.insert(
            frame.columns.get_loc("flag") + 1,
            "below four-fifths",
            frame["flag"].map({True: "yes", False: ""}),
        )
        return frame

    def to_dict(self) -> dict:
        return {
            "min_size": self.min_size,
            "groups": [g.to_dict() for g in self.groups],
            "highest": self.highest,
            "flags": self.sentences,
        }


def _field_label(name: str) -> str:
    return "first-time organisation" if name == FIRST_TIME else name


def group_rates(
    values: pd.DataFrame,
    recommended: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray | None = None,
    by: list[str] | None = None,
    min_size: int = MIN_GROUP,
) -> GroupReport:
    """Rates of a decision per group of each field in ``by`` (columns of :func:`slice_values`)."""
    if min_size < 1:
        raise BadRequest("The minimum group size must be at least 1.")
    by = by or [f for f in GROUP_FIELDS if f in values]
    unknown = [f for f in by if f not in values]
    if unknown:
        raise BadRequest(
            f"Unknown group field(s): {', '.join(unknown)}; choose from {', '.join(GROUP_FIELDS)}."
        )
    rec = np.asarray(recommended, dtype=bool)
    p = np.asarray(probabilities, dtype=float)
    y = None if labels is None else np.asarray(labels, dtype=float)
    known = None if y is None else ~np.isnan(y)
    groups: list[GroupRate] = []
    highest: dict[str, str] = {}
    sentences: list[str] = []
    for f in by:
        column = values[f].astype(str).to_numpy()
        counts = pd.Series(column).value_counts()
        rare = set(counts[counts < min_size].index)
        if len(rare) > 1:  # pool rare values; a single rare value keeps its name
            column = np.where(pd.Series(column).isin(rare).to_numpy(), OTHER, column)
        order = pd.Series(column).value_counts()
        rows = []
        for value, n in order.items():
            m = column == value
            k = int(rec[m].sum())
            rows.append((str(value), int(n), k, m))
        sizeable = [(v, k / n) for v, n, k, _ in rows if n >= min_size and v != OTHER]
        sizeable = sizeable or [(v, k / n) for v, n, k, _ in rows if n >= min_size]  # only "other" is big
        top_value, top_rate = max(sizeable, key=lambda t: t[1]) if sizeable else (None, None)
        if top_value is not None:
            highest[f] = top_value
        for value, n, k, m in rows:
            rate = k / n
            ratio = round(rate / top_rate, 6) if top_rate else None
            small = n < min_size
            flag = bool(not small and ratio is not None and ratio < FOUR_FIFTHS)
            extra = _labelled_rates(m, rec, p, y, known)
            lo, hi = wilson(k, n)
            groups.append(
                GroupRate(
                    field=f, value=value, n=n, recommended=k, selection_rate=round(rate, 6),
                    selection_low=lo, selection_high=hi, ratio_to_highest=ratio, flag=flag,
                    mean_chance=round(float(p[m].mean()), 6), small=small, **extra,
                )
            )  # fmt: skip
            if flag:
                sentences.append(
                    f"{_field_label(f)} {value} is recommended at {ratio:.0%} of the rate of {top_value} "
                    f"({rate:.0%} vs {top_rate:.0%}); {n:,} applicants."
                )
    return GroupReport(groups, highest, min_size, sentences)


def _labelled_rates(
    m: np.ndarray, rec: np.ndarray, p: np.ndarray, y: np.ndarray | None, known: np.ndarray | None
) -> dict:
    if y is None:
        return {}
    m = m & known
    n = int(m.sum())
    if n == 0:
        return {"labelled": 0}
    yy, rr = y[m].astype(int), rec[m]
    pos, neg = yy == 1, yy == 0
    right = int((rr.astype(int) == yy).sum())
    out = {"labelled": n}
    out["success_rate"], (out["success_low"], out["success_high"]) = _rate(pos.sum(), n), wilson(pos.sum(), n)
    out["accuracy"], (out["accuracy_low"], out["accuracy_high"]) = _rate(right, n), wilson(right, n)
    tp, fp = int((rr & pos).sum()), int((rr & neg).sum())
    out["tpr"], (out["tpr_low"], out["tpr_high"]) = _rate(tp, int(pos.sum())), wilson(tp, int(pos.sum()))
    out["fpr"], (out["fpr_low"], out["fpr_high"]) = _rate(fp, int(neg.sum())), wilson(fp, int(neg.sum()))
    out["calibration_gap"] = round(float(p[m].mean() - yy.mean()), 6)
    return out


# -- weak spots ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeakSpot:
    rule: dict[str, str]
    n: int
    errors: int
    error_rate: float
    overall_error_rate: float
    lift: float
    error_low: float | None
    error_high: float | None
    z: float  # one-sided binomial z-score against the overall error rate
    merged: list[dict[str, str]] = field(default_factory=list)  # overlapping slices folded into this one

    def describe(self) -> str:
        return " and ".join(f"{_field_label(k)} = {v}" for k, v in self.rule.items())

    def sentence(self) -> str:
        return (
            f"{self.describe()}: {self.n:,} applicants, the model's decision is wrong for "
            f"{self.error_rate:.0%} of them ({self.lift:.1f} times the overall "
            f"{self.overall_error_rate:.0%}; 95% interval "
            f"{self.error_low:.0%} to {self.error_high:.0%})."
        )

    def to_dict(self) -> dict:
        return asdict(self)


def weak_spots(
    values: pd.DataFrame,
    errors: np.ndarray,
    by: list[str] | None = None,
    min_size: int = MIN_SLICE,
    top: int = TOP_SLICES,
    pairs: bool = True,
    ranking: str = "z",
) -> list[WeakSpot]:
    """Slices whose error rate stands furthest above the overall rate, by the strength of the evidence.

    A slice's evidence is its one-sided binomial z-score against the overall error rate,
    (rate - overall) * sqrt(n) / sd: a tiny slice with a high raw rate is not enough, and neither is a
    huge slice barely above the overall rate. Only slices whose 95% Wilson interval lies above the
    overall rate are listed. Going down that ranking, a slice overlapping an already listed one
    (Jaccard > 0.5) is merged into it; the list stops at ``top`` distinct slices. (``ranking=
    "lower bound"`` ranks by the interval's lower end instead; bench/groups.py measured both.)
    """
    if ranking not in RANKINGS:
        raise BadRequest(f"Rank weak spots by one of {', '.join(RANKINGS)}.")
    by = by or [f for f in GROUP_FIELDS if f in values]
    err = np.asarray(errors, dtype=bool)
    n_all = len(err)
    if n_all == 0:
        return []
    base = float(err.mean())
    if base <= 0 or base >= 1:
        return []
    codes, uniques = {}, {}
    for f in by:
        codes[f], uniques[f] = pd.factorize(values[f].astype(str))
    candidates: list[tuple[float, dict[str, int], int, int]] = []  # (evidence, {field: code}, n, errors)

    def consider(rule: dict[str, int], n: np.ndarray, k: np.ndarray, index: np.ndarray) -> None:
        for j in index:
            nn, kk = int(n[j]), int(k[j])
            lo, _ = wilson(kk, nn)
            if lo is not None and lo > base:
                evidence = lo - base if ranking == "lower bound" else (kk / nn - base) * math.sqrt(nn)
                candidates.append((evidence, rule(j), nn, kk))

    for f in by:
        width = len(uniques[f])
        n_v = np.bincount(codes[f], minlength=width)
        k_v = np.bincount(codes[f], weights=err, minlength=width)
        consider(lambda j, f=f: {f: int(j)}, n_v, k_v, np.nonzero(n_v >= min_size)[0])
    if pairs:
        for a_i, a in enumerate(by):
            for b in by[a_i + 1 :]:
                width = len(uniques[b])
                joint = codes[a] * width + codes[b]
                size = len(uniques[a]) * width
                n_v = np.bincount(joint, minlength=size)
                k_v = np.bincount(joint, weights=err, minlength=size)
                consider(
                    lambda j, a=a, b=b, width=width: {a: int(j // width), b: int(j % width)},
                    n_v, k_v, np.nonzero(n_v >= min_size)[0],
                )  # fmt: skip
    candidates.sort(key=lambda c: (-c[0], len(c[1]), -c[2]))
    kept: list[tuple[WeakSpot, np.ndarray]] = []
    for _, coded, n, k in candidates:
        rule = {f: str(uniques[f][c]) for f, c in coded.items()}
        mask = np.ones(n_all, dtype=bool)
        for f, c in coded.items():
            mask &= codes[f] == c
        merged_into = None
        for spot, other in kept:
            if int((mask & other).sum()) / int((mask | other).sum()) > MERGE_JACCARD:
                merged_into = spot
                break
        if merged_into is not None:
            merged_into.merged.append(rule)
            continue
        if len(kept) >= top:
            break
        lo, hi = wilson(k, n)
        rate = k / n
        z = (rate - base) / math.sqrt(base * (1 - base) / n)
        spot = WeakSpot(
            rule, n, k, round(rate, 6), round(base, 6), round(rate / base, 4), lo, hi, round(z, 4)
        )
        spot.merged.clear()
        kept.append((spot, mask))
    return [s for s, _ in kept]


# -- cohorts ---------------------------------------------------------------------------------------
def _cohorts_file() -> Path:
    return config.home() / "cohorts.json"


def list_cohorts() -> dict[str, dict[str, str]]:
    path = _cohorts_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except ValueError as err:
        raise BadRequest(f"The saved cohorts file {path} is damaged; it was kept as it is.") from err
    return {str(k): {str(f): str(v) for f, v in rule.items()} for k, rule in data.items()}


def save_cohort(name: str, rule: dict[str, str]) -> None:
    """Save a named cohort (a rule of field values); names are plain text, at most 80 characters."""
    name = " ".join(str(name).split())[:80]
    if not name:
        raise BadRequest("A cohort needs a name.")
    unknown = [f for f in rule if f not in GROUP_FIELDS]
    if unknown or not rule:
        raise BadRequest(f"A cohort rule uses the fields {', '.join(GROUP_FIELDS)}.")
    cohorts = list_cohorts()
    cohorts[name] = {str(f): str(v) for f, v in rule.items()}
    path = _cohorts_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(cohorts, indent=1, sort_keys=True))
    os.replace(tmp, path)


def delete_cohort(name: str) -> None:
    cohorts = list_cohorts()
    cohorts.pop(name, None)
    path = _cohorts_file()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(cohorts, indent=1, sort_keys=True))
    os.replace(tmp, path)


def cohort_mask(values: pd.DataFrame, rule: dict[str, str]) -> np.ndarray:
    """Rows of ``values`` (from :func:`slice_values`) inside a cohort."""
    mask = np.ones(len(values), dtype=bool)
    for f, v in rule.items():
        if f not in values:
            raise BadRequest(f"This data has no {f} to select the cohort by.")
        mask &= values[f].astype(str).to_numpy() == str(v)
    return mask


def spots_table(spots: list[WeakSpot]) -> pd.DataFrame:
    """Weak spots as a table (the chart's numbers)."""
    return pd.DataFrame(
        [
            {"slice": s.describe(), "n": s.n, "errors": s.errors, "error_rate": s.error_rate,
             "error_low": s.error_low, "error_high": s.error_high, "overall_error_rate": s.overall_error_rate,
             "lift": s.lift, "merged": "; ".join(describe_rule(m) for m in s.merged)}
            for s in spots
        ],
        columns=["slice", "n", "errors", "error_rate", "error_low", "error_high", "overall_error_rate",
                 "lift", "merged"],
    )  # fmt: skip


def test_split_values(bundle: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A version's test split (labels, chances) and its rows as groups name them."""
    preds = bundle.test_predictions()
    if "seen_organisation" in preds:
        seen = preds["seen_organisation"].to_numpy(dtype=bool)
    else:
        seen = bundle.is_seen(preds)
    return slice_values(preds, ~seen), preds


def describe_rule(rule: dict[str, str]) -> str:
    return " and ".join(f"{FIELD_LABELS.get(k, _field_label(k))} = {v}" for k, v in rule.items())


# -- one call for the CLI and the pages -----------------------------------------------------------
def analyse(
    values: pd.DataFrame,
    recommended: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray | None,
    by: list[str] | None = None,
    min_size: int = MIN_GROUP,
    with_weak_spots: bool = False,
    slice_min: int = MIN_SLICE,
) -> tuple[GroupReport, list[WeakSpot] | None]:
    """Group rates, and (with labels, when asked) weak spots of the same decision."""
    report = group_rates(values, recommended, probabilities, labels, by, min_size)
    spots = None
    if with_weak_spots and labels is not None:
        y = np.asarray(labels, dtype=float)
        known = ~np.isnan(y)
        errors = np.asarray(recommended, dtype=bool)[known].astype(int) != y[known].astype(int)
        spots = weak_spots(values.loc[known].reset_index(drop=True), errors, by, slice_min)
    return report, spots
