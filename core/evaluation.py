"""Evaluation: the numbers and curve points the Compare page and the CLI report.

Everything returns plain dicts/DataFrames (JSON-ready) so results can be stored inside a
model bundle and re-plotted without the model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width probability bins: mean |accuracy - confidence|, weighted by size."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / max(len(y), 1))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability-diagram points: per bin, mean predicted, observed rate and count."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "mean_predicted": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return out


def _thin(arrays: list[np.ndarray], max_points: int = 200) -> list[list[float]]:
    n = len(arrays[0])
    keep = (
        np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)) if n else np.array([], int)
    )
    return [[float(v) for v in a[keep]] for a in arrays]


def _safe(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, AUC, log loss, Brier, precision/recall/F1, ECE and the confusion matrix."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    if len(y) == 0:
        return {"n": 0, "threshold": float(threshold)}
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    return {
        "n": len(y),
        "base_rate": _safe(y.mean()),
        "threshold": float(threshold),
        "accuracy": _safe(skm.accuracy_score(y, pred)),
        "roc_auc": _safe(skm.roc_auc_score(y, p)) if both else None,
        "log_loss": _safe(skm.log_loss(y, p, labels=[0, 1])),
        "brier": _safe(skm.brier_score_loss(y, p)),
        "precision": _safe(skm.precision_score(y, pred, zero_division=0)),
        "recall": _safe(skm.recall_score(y, pred, zero_division=0)),
        "f1": _safe(skm.f1_score(y, pred, zero_division=0)),
        "ece": _safe(expected_calibration_error(y, p)),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def curve_points(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC and precision-recall curve points (thinned to ~200) and calibration bins."""
    y = np.asarray(y).astype(int)
    out: dict = {"calibration": calibration_bins(y, p)}
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = skm.roc_curve(y, p)
        prec, rec, _ = skm.precision_recall_curve(y, p)
        fpr_t, tpr_t = _thin([fpr, tpr])
        rec_t, prec_t = _thin([rec[::-1], prec[::-1]])
        out["roc"] = {"fpr": fpr_t, "tpr": tpr_t}
        out["pr"] = {"recall": rec_t, "precision": prec_t}
    return out


def evaluate_predictions(
    y: np.ndarray, p: np.ndarray, threshold: float = 0.5, seen: np.ndarray | None = None
) -> dict:
    """Full report for one split; with ``seen`` also for repeat vs first-time organisations."""
    report = classification_metrics(y, p, threshold)
    report["curves"] = curve_points(y, p)
    if seen is not None:
        seen = np.asarray(seen, dtype=bool)
        report["seen_organisations"] = classification_metrics(y[seen], p[seen], threshold)
        report["new_organisations"] = classification_metrics(y[~seen], p[~seen], threshold)
    return report


def evaluate_grouped(variant: str, frame: pd.DataFrame, seed: int = 0) -> dict:
    """Honest figure for first-time applicants: refit on a split by organisation NAME.

    No organisation appears on both sides of the test cut, so every test row is a new
    organisation; the report sits beside the random-split one for every variant.
    """
    from core.schema import TARGET
    from core.training import fit_variant, grouped_split, predict_proba
    from core.variants import get_variant

    splits = grouped_split(frame, seed)
    trained = fit_variant(get_variant(variant), frame.iloc[splits.train], frame.iloc[splits.val], seed)
    test = frame.iloc[splits.test]
    probabilities = predict_proba(trained.pipeline, trained.model, test)
    report = evaluate_predictions(test[TARGET].to_numpy(), probabilities)
    report.pop("curves")
    report["split"] = "grouped by NAME"
    return report


def metrics_at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Confusion matrix and rates at any threshold (the Compare page's slider)."""
    return classification_metrics(y, p, threshold)


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """McNemar's exact test on paired predictions: do two models err on different rows?"""
    y = np.asarray(y).astype(int)
    a_right = np.asarray(pred_a).astype(int) == y
    b_right = np.asarray(pred_b).astype(int) == y
    only_a = int(np.sum(a_right & ~b_right))
    only_b = int(np.sum(~a_right & b_right))
    n = only_a + only_b
    p_value = float(stats.binomtest(only_a, n, 0.5).pvalue) if n else 1.0
    return {"only_a_right": only_a, "only_b_right": only_b, "p_value": p_value}


def bootstrap_accuracy_difference(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_boot: int = 2000, random_state: int = 0
) -> dict:
    """Accuracy(a) - accuracy(b) with a percentile bootstrap 95% interval over test rows."""
    y = np.asarray(y).astype(int)
    diff = (np.asarray(pred_a) == y).astype(float) - (np.asarray(pred_b) == y).astype(float)
    rng = np.random.default_rng(random_state)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    boots = diff[idx].mean(axis=1)
    low, high = np.percentile(boots, [2.5, 97.5])
    return {"difference": float(diff.mean()), "ci_low": float(low), "ci_high": float(high)}


def compare_pair(
    a: str, preds_a: pd.DataFrame, b: str, preds_b: pd.DataFrame, threshold: float = 0.5
) -> dict:
    """Two variants on the same test rows: McNemar, bootstrap interval, rows they disagree on.

    ``preds_*`` are bundles' stored test predictions (``row``, ``IS_SUCCESSFUL``,
    ``success_probability`` and the applicant fields). Raises BadRequest when the two were
    evaluated on different rows (other seed or data), where a paired test means nothing.
    """
    if not preds_a["row"].reset_index(drop=True).equals(preds_b["row"].reset_index(drop=True)):
        from core.errors import BadRequest

        raise BadRequest(f"{a} and {b} were trained with different seeds or data, so their test rows differ.")
    y = preds_a["IS_SUCCESSFUL"].to_numpy()
    ya = (preds_a["success_probability"].to_numpy() >= threshold).astype(int)
    yb = (preds_b["success_probability"].to_numpy() >= threshold).astype(int)
    both = preds_a.assign(
        **{f"p_{a}": preds_a["success_probability"], f"p_{b}": preds_b["success_probability"].to_numpy()}
    )
    first = [c for c in ("EIN", "NAME", f"p_{a}", f"p_{b}", "IS_SUCCESSFUL") if c in both.columns]
    cols = first + [
        c for c in both.columns if c not in (*first, "success_probability", "row", "seen_organisation")
    ]
    return {
        "n": len(y),
        "mcnemar": mcnemar(y, ya, yb),
        "bootstrap": bootstrap_accuracy_difference(y, ya, yb),
        "disagreements": both.loc[ya != yb, cols].reset_index(drop=True),
    }


def cohort_test_report(bundle: object, rule: dict[str, str]) -> dict:
    """A version's test-split report restricted to a cohort's rows (metrics and curves), with ``n``."""
    from core.groups import cohort_mask, test_split_values
    from core.schema import TARGET

    values, preds = test_split_values(bundle)
    mask = cohort_mask(values, rule)
    y = preds[TARGET].to_numpy()[mask]
    p = preds["success_probability"].to_numpy()[mask]
    seen = preds["seen_organisation"].to_numpy(dtype=bool)[mask] if "seen_organisation" in preds else None
    if len(y) == 0:
        return {"n": 0}
    report = evaluate_predictions(y, p, bundle.threshold, seen=seen)
    report["n"] = len(y)
    return report


def summary_row(label: str, card: object, test: dict | None = None) -> dict:
    """One row of the Compare table from a model card (``test``: another report, e.g. a cohort's)."""
    grouped = card.grouped
    first_time = card.first_time if test is None else test.get("new_organisations", {})
    test = card.test if test is None else test
    return {
        "version": label,
        "variant": card.variant,
        "data": "synthetic" if card.synthetic else "real",
        "accuracy": test.get("accuracy"),
        "roc_auc": test.get("roc_auc"),
        "log_loss": test.get("log_loss"),
        "brier": test.get("brier"),
        "precision": test.get("precision"),
        "recall": test.get("recall"),
        "f1": test.get("f1"),
        "ece": test.get("ece"),
        "new_org_accuracy": first_time.get("accuracy"),
        "grouped_accuracy": grouped.get("accuracy"),
        "grouped_roc_auc": grouped.get("roc_auc"),
        "parameters": card.parameters or None,
        "epochs": card.epochs_run,
        "train_seconds": card.train_seconds,
        "test_figures_from": card.evaluation_short(),
    }


def comparison_table(cards: dict, tests: dict | None = None) -> pd.DataFrame:
    """Versions side by side, one row each (``cards``: label -> ModelCard; ``tests``: label -> report
    to use instead of the card's test split, e.g. a cohort's)."""
    tests = tests or {}
    return pd.DataFrame([summary_row(label, c, tests.get(label)) for label, c in cards.items()])


def unseen_rows(a: object, b: object) -> tuple[pd.DataFrame, str]:
    """Labelled rows that neither version's served network trained on, and which rows they are in
    words: the fixed evaluation rows of their histories (the same rows for both). Raises BadRequest
    when either version predates fixed evaluation rows (its served network may have seen any row)."""
    from core.errors import BadRequest
    from core.schema import TARGET

    old = [v.card.version for v in (a, b) if not v.card.fixed_evaluation]
    if old:
        raise BadRequest(
            f"{', '.join(old)} was trained before fixed evaluation rows existed; its served network may "
            "have trained on any row of its history. Compare on a labelled file it never saw (--input)."
        )
    parts = [a.test_predictions()]
    if b.card.training_data.sha256 != a.card.training_data.sha256:
        parts.append(b.test_predictions())
    rows = pd.concat(parts, ignore_index=True)
    features = rows.drop(columns=["row", "success_probability", "seen_organisation"], errors="ignore")
    rows = rows.loc[~features.astype(str).duplicated()].reset_index(drop=True)
    if len(parts) == 1:
        on = (
            f"the {len(rows):,} fixed evaluation rows of their {a.card.training_data.rows:,}-row history "
            "(rows whose EIN falls in the 20% evaluation share, the same rows for every version); "
            "neither version's served network trained on them"
        )
    else:
        on = (
            f"the fixed evaluation rows of both versions' histories ({len(rows):,} rows, duplicates "
            "dropped); neither version's served network trained on them"
        )
    rows[TARGET] = rows[TARGET].astype(int)
    return rows, on


def unseen_given_rows(
    versions: list, rows: pd.DataFrame, source: str
) -> tuple[pd.DataFrame, str, int | None]:
    """A labelled file's valid rows less those any of ``versions``' served networks learned from
    (``Bundle.learned_from``): (rows kept, which rows in words, rows left out; None when a version
    cannot tell). Raises BadRequest when no row is left or the rows left have one outcome only."""
    from core.errors import BadRequest
    from core.schema import TARGET

    learned = np.zeros(len(rows), dtype=bool)
    unknown = []
    for version in versions:
        mask = version.learned_from(rows)
        if mask is None:
            unknown.append(version.version)
        else:
            learned |= mask
    if len(versions) == 2:
        learned_by, never, it = (
            "one of the versions learned from",
            "neither version's served network trained on",
            "a version",
        )
    else:
        learned_by, never, it = (
            "the version learned from",
            "the version's served network never trained on",
            "it",
        )
    left_out = int(learned.sum())
    if left_out == len(rows):
        raise BadRequest(
            f"Every valid row of {source} is a row {learned_by}: a figure on them would flatter it. "
            "Give labelled rows it never saw."
        )
    kept = rows.loc[~learned].reset_index(drop=True)
    if kept[TARGET].nunique() < 2:
        raise BadRequest(
            f"The {len(kept):,} rows of {source} that {never} have one outcome only; accuracy and "
            "ROC AUC need both (IS_SUCCESSFUL 0 and 1)."
        )
    on = f"the {len(kept):,} valid labelled rows of {source} that {never}"
    if left_out:
        on += f" ({left_out:,} rows {it} trained on were left out)"
    if unknown:
        on += (
            f"; {', '.join(unknown)} was saved before versions kept their training rows, so whether it "
            "trained on any of these rows cannot be told"
        )
    return kept, on, (None if unknown else left_out)


def compare_versions(a: object, b: object, rows: pd.DataFrame | None = None, on: str | None = None) -> dict:
    """Two versions on the same labelled rows: accuracy and ROC AUC each (at its own threshold) and
    McNemar's exact p. ``rows`` None: rows neither served network trained on (``unseen_rows``)."""
    from core.schema import TARGET

    if rows is None:
        rows, on = unseen_rows(a, b)
    features = rows.drop(columns=["row", "success_probability", "seen_organisation", TARGET], errors="ignore")
    y = rows[TARGET].to_numpy().astype(int)
    pa, pb = a.predict_proba(features), b.predict_proba(features)
    ma = classification_metrics(y, pa, a.threshold)
    mb = classification_metrics(y, pb, b.threshold)
    test = mcnemar(y, (pa >= a.threshold).astype(int), (pb >= b.threshold).astype(int))
    return {
        "rows": len(y),
        "on": on or "the labelled rows given",
        "a": {"version": a.version, "accuracy": ma["accuracy"], "roc_auc": ma["roc_auc"]},
        "b": {"version": b.version, "accuracy": mb["accuracy"], "roc_auc": mb["roc_auc"]},
        "mcnemar_p": test["p_value"],
        "mcnemar": test,
    }


def head_to_head(candidate: object, live: object) -> list[dict]:
    """A candidate version beside the live one on the same rows, rows neither served network trained
    on (``unseen_rows``). Each entry: ``split`` (the rows in words) plus ``compare_pair``'s result
    (A = candidate, B = live) and both versions' accuracy and ROC AUC on those rows."""
    from core.schema import TARGET

    rows, on = unseen_rows(candidate, live)
    features = rows.drop(columns=["row", "success_probability", "seen_organisation", TARGET], errors="ignore")
    pa = rows.assign(success_probability=candidate.predict_proba(features))
    pb = rows.assign(success_probability=live.predict_proba(features))
    y = rows[TARGET].to_numpy()
    result = compare_pair("candidate", pa, "live", pb, candidate.threshold)
    result["split"] = on
    result["candidate"] = classification_metrics(y, pa["success_probability"].to_numpy(), candidate.threshold)
    result["live"] = classification_metrics(y, pb["success_probability"].to_numpy(), live.threshold)
    return [result]
