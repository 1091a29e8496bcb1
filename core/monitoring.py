"""Batch monitoring: does a batch look like the training data, how accurate is the model likely to be
on it, and how accurate was it once outcomes arrived.

* :class:`Reference` — stored in each bundle at training time (``reference.json``, signed with the
  rest): per application field the training counts of every value and the model's own buckets (the
  values it keeps apart; the rest are its "other" bucket), ASK_AMT quantiles and bins, the share of
  applicants from organisations absent from the training data as expected out of fold, and the
  distribution of the model's own chances on its test split. Versions saved before it existed get
  it computed on first use from their training data when that file is here (same sha256), else
  "no reference".
* :class:`Profile` — additive counts of a batch (chunk by chunk, so the CLI checks files of any size).
* :func:`run_checks` — per field a two-sample chi-square test of the batch against the training counts
  (buckets whose expected count is under 5 pooled), the PSI of the same buckets, and the values
  never seen in training. A field **fails** when the difference is both significant after a
  Bonferroni correction over all tests (p < 0.01 / number of tests) and large (PSI >= 0.10); it
  **warns** when it is significant at 0.05 / number of tests, or when 1% or more of the rows hold
  values never seen in training. Measured false alarms: ``bench/monitoring.py``.
* :func:`estimate` — confidence-based performance estimation (CBPE): with calibrated chances ``q``, a
  recommended row is right with probability ``q`` and a declined one with ``1 - q``; the expected
  accuracy is their mean. ``q`` is the scoring network's chance recalibrated per segment (first-time
  and repeat organisations) and chance decile on the fixed evaluation rows, which that network never
  trained on (:class:`EstimateCalibration`, stored in the reference). The 90% interval adds the
  calibration's own uncertainty (each bin's success rate rests on a finite number of rows) to the
  variance of the sum of Bernoulli variables. Evidence: ``bench/monitoring.py``. It assumes the
  relation between fields and outcomes has not changed since training.
* :func:`realized` — the same figures measured on outcomes that arrived later.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.schema import REQUIRED_FIELDS

FIELDS = list(REQUIRED_FIELDS)  # the nine application fields
NUMERIC = "ASK_AMT"
CATEGORY_FIELDS = [f for f in FIELDS if f != NUMERIC]
REFERENCE_FILE = "reference.json"
OK, WARN, FAIL = "ok", "warn", "fail"
STATUS_RANK = {OK: 0, WARN: 1, FAIL: 2}
STATUS_WORDS = {OK: "OK", WARN: "Warning", FAIL: "Fail"}
ALPHA_FAIL = 0.01  # family-wise, split over the tests (Bonferroni)
ALPHA_WARN = 0.05
PSI_FAIL = 0.10
PSI_CHANCES_WARN, PSI_CHANCES_FAIL = 0.10, 0.25
UNSEEN_WARN_SHARE = 0.01
MIN_EXPECTED = 5.0
REJECTED_WARN, REJECTED_FAIL = 0.02, 0.10  # share of the file's rows
N_TESTS = len(FIELDS) + 1  # the nine fields and the first-time share
Z90 = 1.6448536269514722
ASK_QUANTILES = [i / 20 for i in range(21)]
OTHER_BUCKET = "(other)"
RARE_BUCKET = "(rare or never seen)"
ASSUMPTION = (
    "This estimate assumes the relation between application fields and outcomes is the same as in "
    "the training data; it cannot see changes in that relation, and data-check failures make it unreliable."
)


def _text(values: pd.Series) -> pd.Series:
    """Field values as the model's encoder sees them (text)."""
    return values.astype(str)


# -- the reference profile ------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What the training data looked like, for comparing batches with it."""

    rows: int
    categories: dict[str, dict[str, int]]  # field -> training count of each value (as text)
    model_buckets: dict[str, list[str]]  # values the model keeps apart; the rest are its "other"
    ask_quantiles: dict[str, float]  # "0.00" .. "1.00" in 5% steps
    ask_edges: list[float]  # bin i holds edges[i-1] <= x < edges[i]; bin 0 is below the minimum
    ask_counts: list[int]
    prob_edges: list[float]  # inner edges of the test split's chance deciles
    prob_counts: list[float]  # test-split rows per decile, reweighted to the expected first-time share
    first_time_share: float | None  # expected share of first-time organisations (leave-one-out)
    rejected_share: float = 0.0
    basis: str = "stored at training"
    # the served network's chances against outcomes on rows it never trained on, per segment
    # (EstimateCalibration.to_dict); None for versions saved before it existed
    estimate_calibration: dict | None = None

    def calibration(self) -> EstimateCalibration | None:
        return EstimateCalibration.from_dict(self.estimate_calibration) if self.estimate_calibration else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})

    def frequencies(self, field_name: str) -> dict[str, float]:
        """Training share of each of the model's buckets of a categorical field."""
        counts = self.categories[field_name]
        total = sum(counts.values()) or 1
        kept = set(self.model_buckets.get(field_name, counts))
        out: dict[str, float] = {}
        for value, c in counts.items():
            key = value if value in kept else OTHER_BUCKET
            out[key] = out.get(key, 0.0) + c / total
        return out


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    cum /= cum[-1]
    return values[order][np.minimum(np.searchsorted(cum, qs), len(values) - 1)]


def _ask_bins(edges: list[float], values: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def _prob_bins(edges: list[float], values: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def expected_first_time(names: np.ndarray) -> float | None:
    """Expected share of a new batch's rows from organisations absent from these training rows.

    Leave-one-out (the limit of out-of-fold): a training row is "new to the others" when its
    organisation appears in no other row, so the share is singletons / rows (the Good-Turing estimate
    of an unseen organisation's chance). Blank names always count as new.
    """
    names = pd.Series(np.asarray(names, dtype=object))
    if len(names) == 0:
        return None
    counts = names[names != ""].value_counts()
    singletons = int((counts == 1).sum())
    return float((singletons + int((names == "").sum())) / len(names))


def build_reference(
    rows: pd.DataFrame,
    pipeline: object,
    test_probabilities: np.ndarray,
    rejected_share: float = 0.0,
    basis: str = "stored at training",
    test_seen: np.ndarray | None = None,
    test_outcomes: np.ndarray | None = None,
    test_names: np.ndarray | None = None,
) -> Reference:
    """The reference profile of a model: its training rows (validated, typed) and test-split chances.

    ``test_seen``: whether each test row's organisation was among the rows the evaluated model
    learned from. The test split's mix of known and new organisations differs from what a new batch
    will have (the final model may know every training row's organisation), so the chance
    distribution is reweighted to the expected first-time share when it is given.
    """
    from core.features import frame_names

    encoder = pipeline.named_steps["encode"]
    categories = {
        f: {str(k): int(v) for k, v in _text(rows[f]).value_counts().items()} for f in CATEGORY_FIELDS
    }
    buckets = {
        f: sorted(map(str, encoder.categories_[f])) if f in encoder.categories_ else sorted(categories[f])
        for f in CATEGORY_FIELDS
    }
    ask = rows[NUMERIC].to_numpy(dtype=float)
    quantiles = np.quantile(ask, ASK_QUANTILES)
    edges = sorted({float(ask.min()), *map(float, quantiles[1:-1])})
    ask_counts = np.bincount(_ask_bins(edges, ask), minlength=len(edges) + 1)
    first_time = expected_first_time(frame_names(rows))
    probs = np.asarray(test_probabilities, dtype=float)
    weights = np.ones(len(probs))
    if test_seen is not None and first_time is not None and len(probs):
        seen = np.asarray(test_seen, dtype=bool)
        if seen.any() and (~seen).any():
            weights = np.where(seen, (1 - first_time) / seen.mean(), first_time / (~seen).mean())
    prob_edges = (
        sorted(set(map(float, _weighted_quantiles(probs, weights, [i / 10 for i in range(1, 10)]))))
        if len(probs)
        else []
    )
    prob_counts = np.bincount(_prob_bins(prob_edges, probs), weights=weights, minlength=len(prob_edges) + 1)
    return Reference(
        rows=len(rows),
        categories=categories,
        model_buckets=buckets,
        ask_quantiles={f"{q:.2f}": float(v) for q, v in zip(ASK_QUANTILES, quantiles)},
        ask_edges=edges,
        ask_counts=[int(c) for c in ask_counts],
        prob_edges=prob_edges,
        prob_counts=[round(float(c), 3) for c in prob_counts],
        first_time_share=first_time,
        rejected_share=float(rejected_share),
        basis=basis,
        estimate_calibration=(
            EstimateCalibration.fit(probs, np.asarray(test_outcomes), test_seen, test_names).to_dict()
            if test_outcomes is not None and test_seen is not None and len(probs)
            else None
        ),
    )


_computed: dict[str, Reference | None] = {}


def reference_of(bundle: object) -> Reference | None:
    """The bundle's stored reference; for versions saved before references existed, one computed on
    first use from the training data when that exact file is available here; else None."""
    if REFERENCE_FILE in getattr(bundle, "digests", {}):
        return Reference.from_dict(json.loads(bundle.read_signed(REFERENCE_FILE)))
    if bundle.version not in _computed:
        _computed[bundle.version] = _compute_for(bundle)
    return _computed[bundle.version]


def _compute_for(bundle: object) -> Reference | None:
    from core import config
    from core.datasets import fixed_splits, load_training_data, split_rows
    from core.errors import ScreeningError
    from core.features import frame_names
    from core.schema import TARGET

    info = bundle.card.training_data
    candidates: list[object] = [None] if info.synthetic else []
    candidates += [p for p in (config.train_csv(), config.SHARED_TRAIN_CSV) if p is not None and p.is_file()]
    for source in candidates:
        try:
            data = load_training_data(source)
        except (ScreeningError, OSError):
            continue
        if data.sha256 != info.sha256:
            continue
        test = bundle.test_predictions()
        share = data.report.n_rejected / max(data.report.n_input, 1)
        seen = test["seen_organisation"].to_numpy() if "seen_organisation" in test else None
        frame, kind, seed = data.frame, bundle.card.splits.get("kind", "random"), bundle.card.seed
        if kind == "fixed-hash":  # the served network learned from train (+ validation when refitted)
            fitted = frame.iloc[fixed_splits(frame, seed).served_on(bundle.card.final_fit is not None)]
        elif bundle.card.final_fit is None and kind == "random":
            fitted = frame.iloc[split_rows(frame[TARGET].to_numpy(), seed).train]
        else:  # an older version refitted on every row
            fitted = frame
        outcomes = test[TARGET].to_numpy() if kind == "fixed-hash" and TARGET in test else None
        return build_reference(
            fitted, bundle.pipeline, test["success_probability"].to_numpy(), share,
            basis=f"computed on first use from {data.source}", test_seen=seen,
            test_outcomes=outcomes, test_names=frame_names(test) if outcomes is not None else None,
        )  # fmt: skip
    return None


# -- a batch's counts -----------------------------------------------------------------------------
@dataclass
class Profile:
    """Additive counts of one batch: add chunk after chunk."""

    reference: Reference
    rows: int = 0  # rows read (accepted + rejected)
    rejected: int = 0
    accepted: int = 0
    values: dict[str, Counter] = field(default_factory=lambda: {f: Counter() for f in CATEGORY_FIELDS})
    ask_counts: np.ndarray | None = None
    ask_below: int = 0
    ask_above: int = 0
    prob_counts: np.ndarray | None = None
    first_time: int = 0
    has_names: bool = True

    def add(
        self, features: pd.DataFrame, probabilities: np.ndarray, first_time: np.ndarray, rejected: int = 0
    ) -> None:
        ref = self.reference
        n = len(features)
        self.rows += n + int(rejected)
        self.rejected += int(rejected)
        self.accepted += n
        if self.ask_counts is None:
            self.ask_counts = np.zeros(len(ref.ask_edges) + 1, dtype=np.int64)
            self.prob_counts = np.zeros(len(ref.prob_edges) + 1, dtype=np.int64)
        if not n:
            return
        for f in CATEGORY_FIELDS:
            self.values[f].update({str(k): int(v) for k, v in _text(features[f]).value_counts().items()})
        ask = features[NUMERIC].to_numpy(dtype=float)
        self.ask_counts += np.bincount(_ask_bins(ref.ask_edges, ask), minlength=len(self.ask_counts))
        lo, hi = ref.ask_quantiles["0.00"], ref.ask_quantiles["1.00"]
        self.ask_below += int((ask < lo).sum())
        self.ask_above += int((ask > hi).sum())
        probs = np.asarray(probabilities, dtype=float)
        self.prob_counts += np.bincount(_prob_bins(ref.prob_edges, probs), minlength=len(self.prob_counts))
        self.first_time += int(np.asarray(first_time, dtype=bool).sum())
        if "NAME" not in features:
            self.has_names = False


# -- the checks -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldCheck:
    """One check's verdict."""

    name: str
    status: str  # ok / warn / fail
    test: str
    statistic: float
    p_value: float | None
    psi: float | None
    unseen: dict[str, int]
    sentence: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """All checks of one batch against its model's reference."""

    n_rows: int
    model_version: str
    fields: dict[str, FieldCheck]
    extra: dict[str, FieldCheck]  # first_time, probabilities, rejected
    reference_basis: str
    n_accepted: int = 0

    @property
    def status(self) -> str:
        every = [*self.fields.values(), *self.extra.values()]
        return max((c.status for c in every), key=STATUS_RANK.__getitem__, default=OK)

    def failing(self) -> list[FieldCheck]:
        return [c for c in [*self.fields.values(), *self.extra.values()] if c.status == FAIL]

    def warning(self) -> list[FieldCheck]:
        return [c for c in [*self.fields.values(), *self.extra.values()] if c.status == WARN]

    def summary(self) -> str:
        """One sentence of what the checks mean for this batch."""
        fails, warns = self.failing(), self.warning()
        if fails:
            names = ", ".join(c.name for c in fails)
            return (
                f"Fail: {len(fails)} check(s) show this batch differs strongly from the training data "
                f"({names}). The model's chances and the accuracy estimate may be unreliable for it; look at "
                "these fields before deciding."
            )
        if warns:
            names = ", ".join(c.name for c in warns)
            return (
                f"Warning: {len(warns)} check(s) flag a difference from the training data ({names}); "
                "worth a look: each check's sentence says what it found."
            )
        return "OK: this batch looks like the training data in every field checked."

    def to_dict(self) -> dict:
        return {
            "n_rows": self.n_rows,
            "n_accepted": self.n_accepted,
            "model_version": self.model_version,
            "status": self.status,
            "summary": self.summary(),
            "reference_basis": self.reference_basis,
            "fields": {k: v.to_dict() for k, v in self.fields.items()},
            "extra": {k: v.to_dict() for k, v in self.extra.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Check:
        return cls(
            n_rows=int(data["n_rows"]),
            model_version=data["model_version"],
            fields={k: FieldCheck(**v) for k, v in data["fields"].items()},
            extra={k: FieldCheck(**v) for k, v in data.get("extra", {}).items()},
            reference_basis=data.get("reference_basis", ""),
            n_accepted=int(data.get("n_accepted", data["n_rows"])),
        )

    def table(self) -> pd.DataFrame:
        """One row per check, for a screen or a report (status as a word, never only a colour)."""
        rows = []
        for c in [*self.fields.values(), *self.extra.values()]:
            rows.append(
                {
                    "check": c.name,
                    "status": STATUS_WORDS[c.status],
                    "test": c.test,
                    "statistic": round(c.statistic, 4),
                    "p_value": None if c.p_value is None else float(f"{c.p_value:.3g}"),
                    "psi": None if c.psi is None else round(c.psi, 4),
                    "never_seen_in_training": "; ".join(f"{v} ({n})" for v, n in c.unseen.items()),
                    "meaning": c.sentence,
                }
            )
        return pd.DataFrame(rows)


def psi(ref_share: np.ndarray, batch_share: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of two distributions over the same buckets."""
    r = np.clip(np.asarray(ref_share, dtype=float), eps, None)
    b = np.clip(np.asarray(batch_share, dtype=float), eps, None)
    return float(np.sum((b - r) * np.log(b / r)))


def _chi_square(r: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.special import chdtrc  # chi2.sf, without importing scipy.stats (1.4 s) when serving

    used = (r + b) > 0
    r, b = r[used], b[used]
    if len(r) < 2:
        return 0.0, 1.0
    n_r, n_b = r.sum(), b.sum()
    total = r + b
    e_r, e_b = total * n_r / (n_r + n_b), total * n_b / (n_r + n_b)
    stat = float(np.sum((r - e_r) ** 2 / e_r) + np.sum((b - e_b) ** 2 / e_b))
    return stat, float(chdtrc(len(r) - 1, stat))


def binomial_test(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial test of k successes in n trials: the p-value of scipy.stats'
    ``binomtest(k, n, p)`` (outcomes no more likely than k, within a relative 1e-7), computed with
    scipy.special so that serving never imports scipy.stats (1.4 s)."""
    from scipy.special import bdtr, bdtrc, gammaln

    if not 0 <= k <= n or not 0.0 <= p <= 1.0 or n < 1:
        raise ValueError(f"binomial test of {k} in {n} at {p}")
    if p in (0.0, 1.0):
        return 1.0 if k == round(p * n) else 0.0

    def pmf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        log = (
            gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1) + x * math.log(p) + (n - x) * math.log1p(-p)
        )
        return np.exp(log)

    d = float(pmf(np.array([k]))[0]) * (1 + 1e-7)
    mode = p * n
    if k == mode:
        return 1.0
    if k < mode:  # add the upper tail: every outcome above the mode no more likely than k
        upper = np.arange(math.ceil(mode), n + 1)
        inside = upper[pmf(upper) <= d]
        pval = bdtr(k, n, p) + (bdtrc(inside[0] - 1, n, p) if len(inside) else 0.0)
    else:  # add the lower tail
        lower = np.arange(0, math.floor(mode) + 1)
        inside = lower[pmf(lower) <= d]
        pval = bdtrc(k - 1, n, p) + (bdtr(inside[-1], n, p) if len(inside) else 0.0)
    return float(min(1.0, pval))


def compare_counts(ref: np.ndarray, batch: np.ndarray) -> tuple[float, float, float]:
    """Two-sample chi-square test and PSI of bucket counts. Returns (statistic, p-value, psi).

    Buckets whose expected batch count is under ``MIN_EXPECTED`` (rare values, values never seen in
    training) are pooled. When the pool still expects fewer than that, the chi-square merges it into
    the smallest other bucket, and an exact binomial test of the pool's count (its training share
    floored at half a training row) joins it: p = min(1, 2 * min(p_chi2, p_binomial)). So a few stray
    rows do not alarm, and an unseen value in many rows is never hidden inside a large bucket.
    The PSI keeps the pool as its own bucket.
    """
    ref, batch = np.asarray(ref, dtype=float), np.asarray(batch, dtype=float)
    n_r, n_b = ref.sum(), batch.sum()
    if n_r == 0 or n_b == 0:
        return 0.0, 1.0, 0.0
    expected = ref / n_r * n_b
    small = expected < MIN_EXPECTED
    keep_r, keep_b = ref[~small], batch[~small]
    pool_r, pool_b = ref[small].sum(), batch[small].sum()
    value = psi(np.append(keep_r, pool_r) / n_r, np.append(keep_b, pool_b) / n_b)
    if not small.any() or pool_r / n_r * n_b >= MIN_EXPECTED or len(keep_r) == 0:
        stat, p = _chi_square(np.append(keep_r, pool_r), np.append(keep_b, pool_b))
        return stat, p, value
    smallest = int(np.argmin(keep_r))
    merged_r, merged_b = keep_r.copy(), keep_b.copy()
    merged_r[smallest] += pool_r
    merged_b[smallest] += pool_b
    stat, p_chi = _chi_square(merged_r, merged_b)
    share = max(pool_r / n_r, 0.5 / n_r)
    p_pool = binomial_test(round(float(pool_b)), round(float(n_b)), min(share, 1.0))
    return stat, min(1.0, 2 * min(p_chi, p_pool)), value


def _status(p: float, value: float, unseen_share: float = 0.0) -> str:
    if p < ALPHA_FAIL / N_TESTS and value >= PSI_FAIL:
        return FAIL
    if p < ALPHA_WARN / N_TESTS or unseen_share >= UNSEEN_WARN_SHARE:
        return WARN
    return OK


def _p_text(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def _sentence(name: str, status: str, p: float, value: float, unseen: dict[str, int], n: int) -> str:
    if status == OK:
        text = f"{name} looks like the training data ({_p_text(p)}, PSI {value:.2f})."
    elif status == FAIL:
        text = f"{name} differs strongly from the training data ({_p_text(p)}, PSI {value:.2f})."
    else:
        text = (
            f"{name} differs from the training data a little or in few rows ({_p_text(p)}, PSI {value:.2f})."
        )
    if unseen:
        rows = sum(unseen.values())
        shown = ", ".join(f"{v} ({c})" for v, c in list(unseen.items())[:5])
        more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
        text += (
            f" {rows} of {n} rows ({rows / max(n, 1):.0%}) hold values never seen in training: "
            f"{shown}{more}; "
            "the model treats them as its 'other' bucket."
        )
    return text


def _category_check(ref: Reference, profile: Profile, name: str, known: list[str] | None) -> FieldCheck:
    counts = ref.categories[name]
    seen = set(known or counts)
    batch = profile.values[name]
    values = sorted(counts)
    unseen = {v: c for v, c in sorted(batch.items(), key=lambda kv: (-kv[1], kv[0])) if v not in seen}
    extra = sorted(v for v in batch if v not in counts)
    r = np.array([counts[v] for v in values] + [0] * len(extra), dtype=float)
    b = np.array([batch.get(v, 0) for v in values] + [batch[v] for v in extra], dtype=float)
    stat, p, value = compare_counts(r, b)
    n = profile.accepted
    status = _status(p, value, sum(unseen.values()) / max(n, 1))
    return FieldCheck(
        name,
        status,
        "chi-square (two-sample)",
        stat,
        p,
        value,
        unseen,
        _sentence(name, status, p, value, unseen, n),
    )


def _ask_check(ref: Reference, profile: Profile) -> FieldCheck:
    counts = profile.ask_counts if profile.ask_counts is not None else np.zeros(len(ref.ask_counts))
    stat, p, value = compare_counts(np.array(ref.ask_counts), counts)
    lo, hi = ref.ask_quantiles["0.00"], ref.ask_quantiles["1.00"]
    unseen = {}
    if profile.ask_below:
        unseen[f"below the training minimum ({lo:,.0f})"] = profile.ask_below
    if profile.ask_above:
        unseen[f"above the training maximum ({hi:,.0f})"] = profile.ask_above
    n = profile.accepted
    status = _status(p, value, sum(unseen.values()) / max(n, 1))
    sentence = _sentence(NUMERIC, status, p, value, {}, n)
    if unseen:
        sentence += " " + "; ".join(f"{c} rows {k}" for k, c in unseen.items()) + "."
    return FieldCheck(
        NUMERIC, status, "chi-square on training quantile bins", stat, p, value, unseen, sentence
    )


def _first_time_check(ref: Reference, profile: Profile, uses_name: bool) -> FieldCheck:
    name = "first-time organisations"
    n = profile.accepted
    share = profile.first_time / max(n, 1)
    if not profile.has_names:
        status = WARN if uses_name else OK
        text = "The file has no NAME column: every applicant counts as a first-time organisation" + (
            ", and this model reads NAME, so its chances are lower than with names." if uses_name else "."
        )
        return FieldCheck(name, status, "share", share, None, None, {}, text)
    if ref.first_time_share is None:
        return FieldCheck(
            name, OK, "share", share, None, None, {}, "No expected share is known for this model."
        )
    expected = ref.first_time_share
    r = np.array([expected * ref.rows, (1 - expected) * ref.rows])
    b = np.array([profile.first_time, n - profile.first_time], dtype=float)
    stat, p, value = compare_counts(r, b)
    # A different mix of new and known organisations is a change in who applies, not bad data: at
    # most a warning (the model's chances for first-time organisations are still its own estimate).
    status = WARN if _status(p, value) != OK else OK
    text = (
        f"{share:.0%} of applicants are organisations absent from the training data; about {expected:.0%} "
        f"was expected ({_p_text(p)}, PSI {value:.2f})."
    )
    if status != OK:
        text += " The model knows less about first-time organisations, so more of them makes it less sure."
    return FieldCheck(name, status, "chi-square on the first-time share", stat, p, value, {}, text)


def _probability_check(ref: Reference, profile: Profile) -> FieldCheck:
    """Drift of the model's own chances, judged by PSI alone (0.10 warns, 0.25 fails): the reference
    comes from the test split of the model as evaluated, which for a model refitted on every row is
    not exactly the final model, so a significance test would flag that difference on clean batches."""
    name = "model's chances"
    counts = profile.prob_counts if profile.prob_counts is not None else np.zeros(len(ref.prob_counts))
    _, p, value = compare_counts(np.array(ref.prob_counts), counts)
    status = FAIL if value >= PSI_CHANCES_FAIL else WARN if value >= PSI_CHANCES_WARN else OK
    verb = {
        OK: "are distributed as",
        WARN: "are distributed somewhat differently from",
        FAIL: "differ strongly from",
    }
    text = f"The model's chances for this batch {verb[status]} those on its test split (PSI {value:.2f})."
    return FieldCheck(name, status, "PSI on test-split chance deciles", value, p, value, {}, text)


def _rejected_check(ref: Reference, profile: Profile) -> FieldCheck:
    name = "rejected rows"
    share = profile.rejected / max(profile.rows, 1)
    status = (
        FAIL
        if share >= REJECTED_FAIL
        else WARN
        if share >= max(REJECTED_WARN, 2 * ref.rejected_share)
        else OK
    )
    text = f"{profile.rejected} of {profile.rows} rows ({share:.1%}) were rejected as invalid"
    text += f" (training data: {ref.rejected_share:.1%})." if ref.rejected_share else "."
    if status != OK:
        text += " Check the rejects file: a shifted or renamed column often causes this."
    return FieldCheck(name, status, "share", share, None, None, {}, text)


def run_checks(
    profile: Profile, version: str, known_values: dict | None = None, uses_name: bool = False
) -> Check:
    """Every check of a batch profile against its reference."""
    ref = profile.reference
    known_values = known_values or {}
    fields = {f: _category_check(ref, profile, f, known_values.get(f)) for f in CATEGORY_FIELDS}
    fields[NUMERIC] = _ask_check(ref, profile)
    fields = {f: fields[f] for f in FIELDS}
    extra = {
        "first_time": _first_time_check(ref, profile, uses_name),
        "probabilities": _probability_check(ref, profile),
        "rejected": _rejected_check(ref, profile),
    }
    return Check(profile.rows, version, fields, extra, ref.basis, profile.accepted)


def new_profile(bundle: object) -> Profile | None:
    """An empty profile for a batch scored by ``bundle`` (None when it has no reference)."""
    ref = reference_of(bundle)
    return Profile(ref) if ref is not None else None


def check_bundle_profile(bundle: object, profile: Profile) -> Check:
    return run_checks(profile, bundle.version, bundle.known_values, bundle.card.uses_name)


# -- accuracy before outcomes (CBPE) --------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """Expected figures of a decision from calibrated chances (before outcomes exist)."""

    n: int
    recommended: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    expected_successes: float
    expected_successes_recommended: float
    expected_precision: float | None
    calibrated: bool = False  # recalibrated per segment on rows the scoring network never saw

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Estimate:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def sentence(self) -> str:
        if not self.n:
            return "No scored rows: nothing to estimate."
        text = (
            f"Expected accuracy of this decision: {self.accuracy:.1%} (90% interval "
            f"{self.accuracy_low:.1%} to {self.accuracy_high:.1%}). Expected successes: "
            f"{self.expected_successes_recommended:,.1f} among the "
            f"{self.recommended:,} recommended, {self.expected_successes:,.1f} among all {self.n:,}."
        )
        if self.expected_precision is not None:
            text += f" Expected share of the recommended who succeed: {self.expected_precision:.1%}."
        if self.calibrated:
            text += (
                " The model's chances were first recalibrated on its evaluation rows (rows it never trained "
                "on), first-time and repeat organisations apart; the interval includes that calibration's "
                "own uncertainty."
            )
        else:
            text += (
                " This model version predates the calibration of this estimate: its chances are taken as "
                "they are, so the estimate may lean optimistic, most of all on first-time organisations."
            )
        return text


SEGMENTS = ("repeat", "first")  # repeat organisations, first-time organisations
CALIBRATION_BINS = 10
CALIBRATION_PRIOR = 20.0  # pseudo-rows pulling a bin's correction towards none


@dataclass(frozen=True)
class EstimateCalibration:
    """How often applicants succeeded at each chance, per segment, on the fixed evaluation rows, as
    scored by the network that scores batches (it never trained on them).

    Per segment and chance bin (deciles of the evaluation rows' chances): rows, successes and the sum
    of chances. A chance ``p`` in bin ``b`` becomes ``p + (successes_b - chances_b) / (rows_b + k)``
    (``k`` = CALIBRATION_PRIOR pulls thin bins towards no correction), and each bin's correction has
    variance ``q(1 - q) / (rows_b + k)``, which widens the interval of a decision's estimate.
    """

    edges: list[float]
    rows: dict[str, list[int]]
    successes: dict[str, list[int]]
    chances: dict[str, list[float]]
    # correlation of outcomes within one organisation beyond what the chances explain, measured on
    # the evaluation rows: an organisation's rows succeed or fail together, which widens the interval
    within_organisation: float = 0.0

    @classmethod
    def fit(
        cls, p: np.ndarray, y: np.ndarray, seen: np.ndarray, names: np.ndarray | None = None
    ) -> EstimateCalibration:
        p, y, seen = np.asarray(p, float), np.asarray(y, int), np.asarray(seen, bool)
        qs = [i / CALIBRATION_BINS for i in range(1, CALIBRATION_BINS)]
        edges = sorted(set(map(float, np.quantile(p, qs))))
        bins = _prob_bins(edges, p)
        size = len(edges) + 1
        rows, succ, chances = {}, {}, {}
        for seg, mask in (("repeat", seen), ("first", ~seen)):
            rows[seg] = np.bincount(bins[mask], minlength=size).tolist()
            succ[seg] = np.bincount(bins[mask], weights=y[mask], minlength=size).astype(int).tolist()
            chances[seg] = [
                round(float(v), 6) for v in np.bincount(bins[mask], weights=p[mask], minlength=size)
            ]
        made = cls(edges, rows, succ, chances)
        if names is None:
            return made
        q, _, _ = made.apply(p, ~seen)
        frame = pd.DataFrame({"g": np.asarray(names, dtype=object), "e": y - q, "sd": np.sqrt(q * (1 - q))})
        frame = frame[frame["g"] != ""]
        sums = frame.groupby("g").agg(e=("e", "sum"), sd=("sd", "sum"), n=("e", "size"))
        squares = (frame.assign(e2=frame["e"] ** 2, v=frame["sd"] ** 2)).groupby("g")[["e2", "v"]].sum()
        many = sums["n"] >= 2
        num = float((sums["e"] ** 2 - squares["e2"])[many].sum())
        den = float((sums["sd"] ** 2 - squares["v"])[many].sum())
        rho = min(max(num / den, 0.0), 1.0) if den > 0 else 0.0
        return cls(edges, rows, succ, chances, round(rho, 6))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EstimateCalibration:
        return cls(
            data["edges"],
            data["rows"],
            data["successes"],
            data["chances"],
            data.get("within_organisation", 0.0),
        )

    def correction(self) -> tuple[np.ndarray, np.ndarray]:
        """(2 x bins) additive correction and its variance; row 0 repeat, row 1 first-time."""
        n = np.array([self.rows[s] for s in SEGMENTS], dtype=float)
        k = np.array([self.successes[s] for s in SEGMENTS], dtype=float)
        c = np.array([self.chances[s] for s in SEGMENTS], dtype=float)
        shift = (k - c) / (n + CALIBRATION_PRIOR)
        rate = np.clip(np.where(n > 0, k / np.maximum(n, 1), 0.5), 0.02, 0.98)
        return shift, rate * (1 - rate) / (n + CALIBRATION_PRIOR)

    def apply(self, p: np.ndarray, first_time: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated chances, and each row's (segment, bin) cell index for the interval."""
        shift, _ = self.correction()
        bins = _prob_bins(self.edges, p)
        seg = np.asarray(first_time, dtype=bool).astype(int)
        q = np.clip(p + shift[seg, bins], 0.0, 1.0)
        return q, seg, bins


@dataclass
class EstimateSums:
    """Additive sums behind :func:`estimate` (the CLI adds chunk after chunk). With a calibration the
    chances are first recalibrated per segment and the interval includes the calibration's own
    uncertainty; without one (versions saved before it existed) they are taken as they are."""

    calibration: EstimateCalibration | None = None
    n: int = 0
    recommended: int = 0
    right: float = 0.0
    variance: float = 0.0
    successes: float = 0.0
    successes_recommended: float = 0.0
    lean: np.ndarray | None = None  # per (segment, bin): recommended minus declined rows
    organisations: dict = field(default_factory=dict)  # name -> sum of its rows' outcome sd
    named_variance: float = 0.0  # sum of the variances of rows with a name

    def add(
        self,
        probabilities: np.ndarray,
        recommended: np.ndarray,
        first_time: np.ndarray | None = None,
        names: np.ndarray | None = None,
    ) -> None:
        p = np.asarray(probabilities, dtype=float)
        rec = np.asarray(recommended, dtype=bool)
        if self.calibration is not None and len(p):
            first = np.zeros(len(p), bool) if first_time is None else np.asarray(first_time, bool)
            p, seg, bins = self.calibration.apply(p, first)
            if self.lean is None:
                self.lean = np.zeros((len(SEGMENTS), len(self.calibration.edges) + 1))
            np.add.at(self.lean, (seg, bins), np.where(rec, 1.0, -1.0))
            if names is not None and self.calibration.within_organisation > 0:
                sd = pd.Series(np.sqrt(p * (1 - p)), index=np.asarray(names, dtype=object))
                sd = sd[sd.index != ""]
                self.named_variance += float((sd**2).sum())
                for name, total in sd.groupby(level=0).sum().items():
                    self.organisations[name] = self.organisations.get(name, 0.0) + float(total)
        right = np.where(rec, p, 1 - p)
        self.n += len(p)
        self.recommended += int(rec.sum())
        self.right += float(right.sum())
        self.variance += float(np.sum(right * (1 - right)))
        self.successes += float(p.sum())
        self.successes_recommended += float(p[rec].sum())

    def result(self) -> Estimate:
        n = self.n
        if n == 0:
            return Estimate(0, 0, math.nan, math.nan, math.nan, 0.0, 0.0, None, self.calibration is not None)
        acc = self.right / n
        variance = self.variance
        if self.calibration is not None and self.lean is not None:
            _, cell_var = self.calibration.correction()
            variance += float(np.sum(self.lean**2 * cell_var))
            # rows of one organisation move together: the covariance of every pair of them
            pairs = sum(v * v for v in self.organisations.values()) - self.named_variance
            variance += self.calibration.within_organisation * max(pairs, 0.0)
        sd = math.sqrt(variance) / n
        return Estimate(
            n=n,
            recommended=self.recommended,
            accuracy=round(acc, 6),
            accuracy_low=round(max(0.0, acc - Z90 * sd), 6),
            accuracy_high=round(min(1.0, acc + Z90 * sd), 6),
            expected_successes=round(self.successes, 4),
            expected_successes_recommended=round(self.successes_recommended, 4),
            expected_precision=round(self.successes_recommended / self.recommended, 6)
            if self.recommended
            else None,
            calibrated=self.calibration is not None,
        )


def estimate(
    probabilities: np.ndarray,
    recommended: np.ndarray,
    first_time: np.ndarray | None = None,
    calibration: EstimateCalibration | None = None,
    names: np.ndarray | None = None,
) -> Estimate:
    """CBPE of a decision: accuracy with a 90% interval, expected successes and precision.
    ``names``: each row's normalised organisation NAME (rows of one organisation move together)."""
    sums = EstimateSums(calibration)
    sums.add(probabilities, recommended, first_time, names)
    return sums.result()


def calibration_of(bundle: object) -> EstimateCalibration | None:
    """The bundle's estimate calibration (None when its reference predates it or it has none)."""
    ref = reference_of(bundle)
    return ref.calibration() if ref is not None else None


# -- outcomes that arrived --------------------------------------------------------------------------
@dataclass(frozen=True)
class Realized:
    """Figures measured on a batch's outcomes (the recorded recommendation, before overrides)."""

    n_matched: int
    n_unmatched: int
    accuracy: float
    precision_recommended: float | None
    roc_auc: float | None
    success_rate: float
    mean_chance: float
    calibration_gap: float  # mean chance minus success rate (positive: the model was too hopeful)
    expected_calibration_error: float
    calibration: list[dict]  # per chance decile: rows, mean chance, success rate

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Realized:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def realized(
    probabilities: np.ndarray, recommended: np.ndarray, outcomes: np.ndarray, n_unmatched: int = 0
) -> Realized:
    from sklearn.metrics import roc_auc_score

    p = np.asarray(probabilities, dtype=float)
    rec = np.asarray(recommended, dtype=bool)
    y = np.asarray(outcomes, dtype=int)
    n = len(y)
    if n == 0:
        return Realized(0, n_unmatched, math.nan, None, None, math.nan, math.nan, math.nan, math.nan, [])
    bins = np.minimum((p * 10).astype(int), 9)
    calibration, ece = [], 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            gap = float(p[m].mean() - y[m].mean())
            ece += m.sum() / n * abs(gap)
            calibration.append(
                {"bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "rows": int(m.sum()),
                 "mean_chance": round(float(p[m].mean()), 6), "success_rate": round(float(y[m].mean()), 6)}
            )  # fmt: skip
    return Realized(
        n_matched=n,
        n_unmatched=int(n_unmatched),
        accuracy=round(float((rec.astype(int) == y).mean()), 6),
        precision_recommended=round(float(y[rec].mean()), 6) if rec.any() else None,
        roc_auc=round(float(roc_auc_score(y, p)), 6) if len(set(y.tolist())) == 2 else None,
        success_rate=round(float(y.mean()), 6),
        mean_chance=round(float(p.mean()), 6),
        calibration_gap=round(float(p.mean() - y.mean()), 6),
        expected_calibration_error=round(ece, 6),
        calibration=calibration,
    )
