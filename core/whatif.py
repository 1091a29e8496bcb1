"""What it would take to be recommended (counterfactuals), and decline reasons staff can send.

Counterfactuals are exact, minimal and verified. The nine application fields each take a known set
of values (those in the model's training data; for ASK_AMT, amounts lower than the applicant's on a
grid that includes the training data's common amounts). Every encoded column of the network's input
belongs to one field, so the first layer's pre-activation is a sum of per-field parts: a change of
fields swaps those parts, and every candidate (all single changes, then all pairs, ...) costs only the
small rest of the network. The search is exhaustive, in this order of preference:

1. fewest fields changed;
2. then the smallest relative cut of ASK_AMT (0 when ASK_AMT does not change);
3. then the highest resulting chance.

The chosen change is verified by scoring the changed row with the same model through the normal
scoring path; locked fields never change. "No change of at most N fields reaches the threshold" is an
answer, not an error.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import BadRequest
from core.schema import FIELD_LABELS, REQUIRED_FIELDS

DEFAULT_CHANGE = ["ASK_AMT", "USE_CASE", "SPECIAL_CONSIDERATIONS"]
CHANGEABLE = list(REQUIRED_FIELDS)
MAX_CHANGES_LIMIT = 3
ASK_GRID_POINTS = 40
DECLINE_REASONS = 4


@dataclass(frozen=True)
class Counterfactual:
    """The smallest verified change that brings one applicant to the threshold (or why none does)."""

    probability: float  # the applicant's chance now
    found: bool | None  # None: already at or above the threshold
    changes: dict[str, object] = field(default_factory=dict)  # field -> new value
    before: dict[str, object] = field(default_factory=dict)  # field -> current value
    new_probability: float | None = None  # verified by scoring the changed row
    text: str = ""


def _money(value: float) -> str:
    return f"${float(value):,.0f}"


def describe_change(changes: dict[str, object], before: dict[str, object]) -> str:
    parts = []
    for f, new in changes.items():
        if f == "ASK_AMT":
            parts.append(f"asking for {_money(new)} instead of {_money(before[f])}")
        else:
            label = FIELD_LABELS.get(f, f).lower()
            parts.append(f"{label} {new} instead of {before[f]}")
    text = " and ".join(parts)
    return text[:1].upper() + text[1:]


def parse_fields(text: str | None) -> list[str]:
    """``--change`` / the page's choice: application fields only (never NAME or EIN)."""
    if not text:
        return list(DEFAULT_CHANGE)
    fields = [f.strip().upper() for f in str(text).split(",") if f.strip()]
    bad = [f for f in fields if f not in CHANGEABLE]
    if bad or not fields:
        raise BadRequest(
            f"Fields that can change: {', '.join(CHANGEABLE)} (not {', '.join(bad) or 'none'}); "
            "NAME and EIN never change."
        )
    return list(dict.fromkeys(fields))


class Searcher:
    """Counterfactual search for one model version (reusable across applicants)."""

    def __init__(self, bundle: object, fields: list[str] | None = None, max_changes: int = 2) -> None:
        if not 1 <= int(max_changes) <= MAX_CHANGES_LIMIT:
            raise BadRequest(f"The number of changed fields must be between 1 and {MAX_CHANGES_LIMIT}.")
        self.bundle = bundle
        self.fields = list(fields or DEFAULT_CHANGE)
        bad = [f for f in self.fields if f not in CHANGEABLE]
        if bad:
            raise BadRequest(f"Fields that can change: {', '.join(CHANGEABLE)}; not {', '.join(bad)}.")
        self.max_changes = int(max_changes)
        owners = np.array(bundle.feature_fields)
        self.columns = {f: np.flatnonzero(owners == f) for f in bundle.source_fields}
        self.net = bundle.network
        self.values = {f: self._candidates(f) for f in self.fields if f != "ASK_AMT"}
        self.ask_grid = self._ask_grid() if "ASK_AMT" in self.fields else np.empty(0)

    # -- candidate values ---------------------------------------------------------------------------
    def _candidates(self, name: str) -> list[object]:
        from core.schema import KNOWN_VALUES

        known = self.bundle.known_values.get(name) or KNOWN_VALUES.get(name) or []
        if name == "STATUS":  # a numeric 0/1 column in some variants: no value list is stored for it
            return sorted({int(float(v)) for v in known} or {0, 1})
        return sorted({str(v) for v in known})

    def _ask_grid(self) -> np.ndarray:
        """Amounts to try: the training data's quantiles (its common amounts), its minimum, and a
        geometric grid from the minimum to the maximum."""
        from core.monitoring import reference_of

        lo, hi = self.bundle.ask_range or (5000.0, 1e9)
        grid = set(np.round(np.geomspace(max(lo, 1.0), max(hi, lo + 1), ASK_GRID_POINTS)).tolist())
        grid.add(float(lo))
        ref = reference_of(self.bundle)
        if ref is not None:
            grid.update(float(v) for v in ref.ask_quantiles.values())
        return np.array(sorted(grid), dtype=float)

    def _parts(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each field's first-layer part for each row: field -> N x H."""
        encoded = self.bundle.transform(rows).astype(np.float64)
        return {f: encoded[:, cols] @ self.net.w1[cols] for f, cols in self.columns.items()}

    def _value_parts(self, template: pd.Series, name: str, values: list[object] | np.ndarray) -> np.ndarray:
        """The part of field ``name`` for each candidate value (independent of the other fields)."""
        if len(values) == 0:
            return np.empty((0, self.net.w1.shape[1]))
        rows = pd.DataFrame([template] * len(values)).reset_index(drop=True)
        rows[name] = list(values)
        encoded = self.bundle.transform(rows).astype(np.float64)
        cols = self.columns[name]
        return encoded[:, cols] @ self.net.w1[cols]

    # -- the search ------------------------------------------------------------------------------------
    def search(self, rows: pd.DataFrame, threshold: float) -> list[Counterfactual]:
        """One :class:`Counterfactual` per validated row (rows at or above the threshold: found=None)."""
        rows = rows.reset_index(drop=True)
        if rows.empty:
            return []
        probs = self.bundle.predict_proba(rows)
        parts = self._parts(rows)
        z1 = sum(parts.values()) + self.net.b1
        template = rows.iloc[0]
        value_parts = {f: self._value_parts(template, f, self.values[f]) for f in self.values}
        ask_parts = self._value_parts(template, "ASK_AMT", self.ask_grid) if len(self.ask_grid) else None
        out: list[Counterfactual] = []
        for i in range(len(rows)):
            if probs[i] >= threshold:
                out.append(Counterfactual(float(probs[i]), None))
                continue
            out.append(
                self._one(rows.iloc[i], float(probs[i]), z1[i], parts, i, value_parts, ask_parts, threshold)
            )
        return out

    def _options(self, row: pd.Series, parts: dict, i: int, value_parts: dict, ask_parts):
        """Per changeable field: (values, first-layer deltas, ASK cut) of every value other than its own."""
        options = {}
        for f in self.fields:
            if f == "ASK_AMT":
                own = float(row["ASK_AMT"])
                keep = self.ask_grid < own
                values = self.ask_grid[keep]
                delta = ask_parts[keep] - parts[f][i]
                cut = (own - values) / own if own > 0 else np.zeros(len(values))
            else:
                current = int(row[f]) if f == "STATUS" else str(row[f])
                keep = np.array([v != current for v in self.values[f]], dtype=bool)
                values = [v for v, k in zip(self.values[f], keep) if k]
                delta = value_parts[f][keep] - parts[f][i]
                cut = np.zeros(len(values))
            if len(values):
                options[f] = (list(values), delta, cut)
        return options

    def _combo(self, z1: np.ndarray, options: dict, combo: tuple[str, ...], threshold: float, keep: int = 5):
        """The best few value combinations of these fields that reach the threshold: (cut, -p, combo, idx).

        Every combination of one value per field is a grid (n1, n2, ..., H) of first-layer
        pre-activations; it is cut along its first axis so no block exceeds about 4M numbers."""
        deltas = [options[f][1] for f in combo]
        cuts = [options[f][2] for f in combo]
        sizes = [d.shape[0] for d in deltas]
        width = deltas[0].shape[1]
        rest = int(np.prod(sizes[1:])) if len(sizes) > 1 else 1
        step = max(1, 4_000_000 // max(1, rest * width))
        found = []
        for start in range(0, sizes[0], step):
            block = [deltas[0][start : start + step], *deltas[1:]]
            block_cuts = [cuts[0][start : start + step], *cuts[1:]]
            total, cut_total = z1, 0.0
            for axis, (d, c) in enumerate(zip(block, block_cuts)):
                shape = [1] * len(combo) + [width]
                shape[axis] = d.shape[0]
                total = total + d.reshape(shape)
                cshape = [1] * len(combo)
                cshape[axis] = len(c)
                cut_total = cut_total + c.reshape(cshape)
            p = self.net.from_first(total)
            hits = np.argwhere(p >= threshold)
            if len(hits) == 0:
                continue
            cut_hits = np.broadcast_to(cut_total, p.shape)[tuple(hits.T)]
            p_hits = p[tuple(hits.T)]
            for j in np.lexsort((-p_hits, cut_hits))[:keep]:
                idx = tuple(int(v) for v in hits[j])
                idx = (idx[0] + start, *idx[1:])
                found.append((float(cut_hits[j]), -float(p_hits[j]), combo, idx))
        return found

    def _one(self, row, prob, z1, parts, i, value_parts, ask_parts, threshold) -> Counterfactual:
        options = self._options(row, parts, i, value_parts, ask_parts)
        before = {f: (float(row[f]) if f == "ASK_AMT" else row[f]) for f in self.fields}
        usable = [f for f in self.fields if f in options]
        for k in range(1, self.max_changes + 1):
            ranked = []
            for combo in itertools.combinations(usable, k):
                ranked.extend(self._combo(z1, options, combo, threshold))
            ranked.sort(key=lambda r: (r[0], r[1]))
            for _, _, combo, idx in ranked:
                changes = {f: options[f][0][j] for f, j in zip(combo, idx)}
                changed = row.copy()
                for f, v in changes.items():
                    changed[f] = v
                verified = float(self.bundle.predict_proba(pd.DataFrame([changed]))[0])
                if verified >= threshold:
                    changes = {f: (float(v) if f == "ASK_AMT" else v) for f, v in changes.items()}
                    text = (
                        f"{describe_change(changes, before)} would raise the chance to {verified:.0%} "
                        f"(from {prob:.0%})."
                    )
                    return Counterfactual(
                        prob, True, changes, {f: before[f] for f in changes}, verified, text
                    )
        names = ", ".join(self.fields)
        text = (
            f"No change of at most {self.max_changes} of the fields {names} brings the chance ({prob:.0%}) "
            f"to the threshold ({threshold:.0%})."
        )
        return Counterfactual(prob, False, text=text)


# -- decline reasons ----------------------------------------------------------------------------------
def decline_reasons(
    attr: object, seen_names: set[str] | None = None, records: dict | None = None, top: int = DECLINE_REASONS
) -> list[list[str]]:
    """Per applicant, up to ``top`` fields that pushed the chance down (exact attributions), in words,
    most negative first; only fields the model reads."""
    from core.explain import _reason_subject

    out = []
    values = attr.values.to_numpy()
    for i in range(len(values)):
        order = [j for j in np.argsort(values[i]) if values[i, j] < -0.0005][:top]
        reasons = []
        for j in order:
            name = attr.fields[j]
            value = attr.data[name].iat[i] if name in attr.data else None
            subject = _reason_subject(name, value, seen_names, records)
            reasons.append(f"{subject} lowered the chance by {abs(values[i, j]) * 100:.1f} points")
        out.append(reasons)
    return out


def decline_letter_frame(
    results: pd.DataFrame, reasons: list[list[str]], suggestions: list[Counterfactual | None]
) -> pd.DataFrame:
    """One row per applicant: EIN, NAME, decision, reasons (declined only), suggestion."""
    decision = np.where(results["recommended"].astype(int).to_numpy() == 1, "recommended", "not recommended")
    return pd.DataFrame(
        {
            "source_line": results["source_line"].to_numpy(),
            "EIN": results["EIN"].to_numpy(),
            "NAME": results["NAME"].to_numpy(),
            "decision": decision,
            "reasons": ["; ".join(r) if d == "not recommended" else "" for r, d in zip(reasons, decision)],
            "suggestion": [
                (s.text if s is not None and s.found else "") if d == "not recommended" else ""
                for s, d in zip(suggestions, decision)
            ],
        }
    )


# -- the CLI: one file in, every row out --------------------------------------------------------------
def cf_columns(fields: list[str]) -> list[str]:
    return [
        "success_probability",
        "cf_found",
        "cf_fields",
        "cf_probability",
        "cf_text",
        *[f"cf_{f}" for f in fields],
    ]


def whatif_frame(
    bundle: object,
    source: object,
    threshold: float | None = None,
    fields: list[str] | None = None,
    max_changes: int = 2,
) -> pd.DataFrame:
    """Every input row in input order: the input columns as read, the chance, and the counterfactual
    (``cf_found`` empty for rows already at or above the threshold and for rejected rows, whose
    ``rejected`` column says why)."""
    from core.batch import score_upload
    from core.decisions import Rule
    from core.reading import read_table
    from core.schema import MALFORMED

    threshold = bundle.threshold if threshold is None else float(threshold)
    Rule("threshold", threshold=threshold)  # validates it
    searcher = Searcher(bundle, fields, max_changes)
    raw = read_table(source).drop(columns=[MALFORMED], errors="ignore")
    scored = score_upload(bundle, source if not isinstance(source, str) else Path(source), "whatif")
    cfs = searcher.search(scored.features, threshold)
    n = len(raw)
    blank = np.full(n, "", dtype=object)
    out = {c: blank.copy() for c in cf_columns(searcher.fields)}
    rejected = blank.copy()
    pos = scored.source_lines - 2
    for j, cf in zip(pos, cfs):
        out["success_probability"][j] = round(cf.probability, 6)
        if cf.found is None:
            continue
        out["cf_found"][j] = int(cf.found)
        if cf.found:
            out["cf_fields"][j] = ";".join(cf.changes)
            out["cf_probability"][j] = round(cf.new_probability, 6)
            for f, v in cf.changes.items():
                out[f"cf_{f}"][j] = f"{v:.0f}" if f == "ASK_AMT" else v
        out["cf_text"][j] = cf.text
    reasons = scored.report.rejected
    if len(reasons):
        rejected[reasons["line"].to_numpy(dtype=int) - 2] = reasons["reason"].to_numpy()
    frame = raw.copy()
    for col, values in out.items():
        frame[col if col not in frame else f"output_{col}"] = values
    frame["rejected" if "rejected" not in frame else "output_rejected"] = rejected
    return frame
