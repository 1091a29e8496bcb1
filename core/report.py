"""Self-contained HTML: the batch report a board reads offline, and the model card.

One file: styles, Plotly's JavaScript (once) and every figure inline; nothing is loaded from the
network. Every number comes from the same core functions the dashboard uses for that batch (the
stored results, overrides, review items, data checks and outcomes). Text from uploaded files is
escaped (``core.text.safe_text``); figures escape their labels too. Printing from a browser gives one
section per page, tables that are not cut through a row, and headers repeated on each page.
Tables over ``MAX_TABLE_ROWS`` rows are summarised; the CSV from History has every row.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core import config
from core.errors import BundleError, VersionMissing
from core.text import safe_text

MAX_TABLE_ROWS = 1000
SOFTWARE = "Alphabet Soup Screening"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       margin: 2rem auto; max-width: 70rem; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.7rem; } h2 { font-size: 1.3rem; border-bottom: 2px solid #0b5394; padding-bottom: .2rem; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #8a8a8a; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #e8eef5; }
.note { color: #3d3d3d; font-size: .9rem; }
.status-ok { font-weight: 600; } .status-warn { font-weight: 600; } .status-fail { font-weight: 700; }
.figure { margin: .5rem 0 1rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
@media print {
  body { margin: 0; max-width: none; }
  section { break-before: page; page-break-before: always; }
  section:first-of-type { break-before: auto; page-break-before: auto; }
  tr, .figure, dl { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def esc(value: object) -> str:
    """Text from files and records, shown as text (entities for every Markdown/HTML special)."""
    return safe_text("" if value is None else str(value), html_only=True)


def _table(frame: pd.DataFrame, caption: str = "", formats: dict | None = None) -> str:
    formats = formats or {}
    head = "".join(f"<th scope='col'>{esc(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                text = "–"
            elif col in formats:
                text = formats[col](value)
            else:
                text = value
            cells.append(f"<td>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(fig: go.Figure, summary: str, div_id: str) -> str:
    """A figure with its one-sentence summary in text (screen readers and print read the sentence)."""
    body = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True, "staticPlot": False},
    )
    label = esc(summary)
    return f"<div class='figure' role='figure' aria-label='{label}'>{body}<p class='note'>{label}</p></div>"


def _page(title: str, sections: list[str], generated: datetime) -> str:
    from plotly.offline import get_plotlyjs

    stamp = f"{SOFTWARE} {software_version()} · generated {generated:%Y-%m-%d %H:%M} UTC"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body><main>"
        f"<h1>{esc(title)}</h1><p class='note'>{esc(stamp)}</p>" + "".join(sections) + "</main></body></html>"
    )


def software_version() -> str:
    text = (
        (config.PROJECT_ROOT / "pyproject.toml").read_text()
        if (config.PROJECT_ROOT / "pyproject.toml").exists()
        else ""
    )
    found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return found.group(1) if found else "unknown"


# -- capture curve --------------------------------------------------------------------------------
def capture_curve(
    probabilities: np.ndarray,
    asks: np.ndarray,
    outcomes: np.ndarray | None = None,
    rank_by: str = "probability",
) -> pd.DataFrame:
    """Funding applicants in rank order: after each one, the share of applicants and money funded and
    the share of the expected successes captured (and, with outcomes, of the actual successes)."""
    p = np.asarray(probabilities, dtype=float)
    a = np.asarray(asks, dtype=float)
    key = p / np.maximum(a, 1.0) if rank_by == "value_per_dollar" else p
    order = np.lexsort((np.arange(len(p)), -key))
    n = len(p)
    frame = pd.DataFrame(
        {
            "funded": np.arange(1, n + 1),
            "share_of_applicants": np.arange(1, n + 1) / max(n, 1),
            "money": np.cumsum(a[order]),
            "expected_capture": np.cumsum(p[order]) / max(p.sum(), 1e-12),
        }
    )
    if outcomes is not None:
        y = np.asarray(outcomes, dtype=float)[order]
        known = ~np.isnan(y)
        total = np.nansum(y)
        frame["realized_capture"] = np.where(known.cumsum() > 0, np.nancumsum(y) / max(total, 1e-12), 0.0)
    return frame


def capture_sentence(curve: pd.DataFrame, funded: int) -> str:
    if funded <= 0 or curve.empty:
        return "The rule funds no applicant, so it captures none of the expected successes."
    row = curve.iloc[min(funded, len(curve)) - 1]
    text = (
        f"Funding the top {row['share_of_applicants']:.0%} of applicants (${row['money']:,.0f}) "
        "is expected to "
        f"capture {row['expected_capture']:.0%} of the expected successes."
    )
    if "realized_capture" in curve:
        share = row["realized_capture"]
        text += f" With the outcomes that arrived, it captured {share:.0%} of the actual successes."
    return text


def capture_table(curve: pd.DataFrame, points: int = 11) -> pd.DataFrame:
    """The curve at every 10% of applicants (the figure's numbers in a table)."""
    if curve.empty:
        return curve
    idx = sorted(
        {
            max(0, min(len(curve) - 1, int(np.ceil(q * len(curve))) - 1))
            for q in np.linspace(0.1, 1, points - 1)
        }
    )
    return curve.iloc[idx].reset_index(drop=True)


@dataclass(frozen=True)
class CaptureView:
    """What a page or report shows of a capture curve; the full curve (a row per applicant) is
    dropped once these are made."""

    figure: object  # plotly Figure, drawn through at most plots.CURVE_POINTS points
    sentence: str
    table: pd.DataFrame  # every 10% of applicants


def capture_view(
    probabilities: np.ndarray,
    asks: np.ndarray,
    funded: int,
    outcomes: np.ndarray | None = None,
    rank_by: str = "probability",
) -> CaptureView:
    from core import plots

    curve = capture_curve(probabilities, asks, outcomes, rank_by)
    return CaptureView(
        plots.capture_figure(curve, funded), capture_sentence(curve, funded), capture_table(curve)
    )


# -- top reasons -------------------------------------------------------------------------------------
def top_reasons(reasons: pd.Series, top: int = 10) -> pd.DataFrame:
    """How often each field appears in the batch's reasons, raising or lowering the chance."""
    counts: Counter = Counter()
    for text in reasons.fillna("").astype(str):
        for part in text.split("; "):
            found = re.match(r"(.+?) (raised|lowered) the chance by", part)
            if found:
                subject = found.group(1)
                field = subject.split(" = ")[0] if " = " in subject else "NAME (organisation record)"
                counts[(field, found.group(2))] += 1
    rows = [{"field": f, "direction": d, "applicants": c} for (f, d), c in counts.most_common(top)]
    return pd.DataFrame(rows, columns=["field", "direction", "applicants"])


# -- the batch report --------------------------------------------------------------------------------
@dataclass
class ReportFacts:
    """The numbers the report states (tests compare them with the core functions)."""

    batch_id: str
    version: str
    recommended: int
    recommended_money: float
    final_recommended: int
    overrides: int
    figures: int


def _section(title: str, body: str, sid: str) -> str:
    return f"<section id='{sid}' aria-labelledby='{sid}-h'><h2 id='{sid}-h'>{esc(title)}</h2>{body}</section>"


def batch_report(
    batch_id: str, models_dir: Path | None = None, url: str | None = None
) -> tuple[str, ReportFacts]:
    """The batch report as one HTML document, and the facts it states."""
    from core import batch as batches
    from core import plots, review, storage
    from core.monitoring import ASSUMPTION, Check, Estimate
    from core.record import load_batch
    from core.registry import load_bundle

    recorded = load_batch(batch_id, url)
    record = recorded.record
    generated = datetime.now(UTC)
    current = recorded.rows
    p = recorded.probabilities
    recommended = recorded.recommended
    final = recorded.final
    asks = recorded.asks
    bundle, bundle_problem = None, ""
    try:
        bundle = load_bundle(models_dir or config.models_dir(), record.version)
    except VersionMissing:
        bundle_problem = "The model version's files are not on this installation; its card is not available."
    except BundleError as err:  # there, but damaged or tampered with: say so, never "not here"
        bundle_problem = f"The model version's files failed verification, so its card is not shown: {err}"
    outcomes = recorded.outcome_labels(url)
    sections: list[str] = []
    figures = 0

    # 1. batch summary
    summary = [
        ("Batch", record.id),
        ("File", record.file_name),
        ("sha256 of the file", record.file_sha256),
        ("Rows in the file", f"{record.rows:,}"),
        ("Accepted", f"{record.accepted:,}"),
        ("Rejected", f"{record.rejected:,}"),
        ("With warnings", f"{record.warned:,}"),
        ("Recorded by", record.user),
        ("Recorded at", f"{record.created_at:%Y-%m-%d %H:%M} UTC"),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in summary)
    sections.append(_section("Batch summary", f"<dl>{dl}</dl>", "summary"))

    # 2. the model
    live = {1: "yes (the live model when recorded)", 0: "no (not the live model when recorded)"}.get(
        record.live, "unknown"
    )
    body = f"<dl><dt>Model version</dt><dd>{esc(record.version)}</dd><dt>Live</dt><dd>{esc(live)}</dd></dl>"
    if bundle is not None:
        card = bundle.card
        body += f"<p>{esc(card.summary())}</p><h3>Limitations</h3><ul>"
        body += "".join(f"<li>{esc(t)}</li>" for t in card.limitations()) + "</ul>"
    else:
        body += f"<p>{esc(bundle_problem)}</p>"
    sections.append(_section("The model", body, "model"))

    # 3. data checks and the estimate
    stored = {} if record.monitoring_damaged else record.monitoring_data()
    if record.monitoring_damaged:
        body = (
            "<p class='status-fail'>Data checks and estimate: the stored record of them is damaged "
            "(not valid JSON). It was kept as it is; ask an administrator to restore a backup.</p>"
        )
    elif stored.get("check"):
        check = Check.from_dict(stored["check"])
        body = f"<p class='status-{check.status}'>{esc(check.summary())}</p>" + _table(
            check.table(), "Data checks against the training data (status as a word)"
        )
    else:
        body = "<p>Data checks: not available (the batch was recorded before they existed).</p>"
    if stored.get("estimate"):
        est = Estimate.from_dict(stored["estimate"])
        body += f"<p>{esc(est.sentence())}</p><p class='note'>{esc(ASSUMPTION)}</p>"
    else:
        body += "<p>Accuracy estimate: not available.</p>"
    if outcomes is not None:
        realized = storage.latest_outcomes(url).get(batch_id)
        if realized:
            r = realized.summary
            body += (
                f"<p>Outcomes arrived for {r['n_matched']:,} applicants: realized accuracy "
                f"{r['accuracy']:.1%} "
                f"(estimated {r['estimated_accuracy']:.1%}).</p>"
            )
    sections.append(_section("Data checks and the accuracy estimate", body, "checks"))

    # 4. the decision and the capture curve
    rec_money = float(asks[recommended].sum())
    body = (
        f"<dl><dt>Rule</dt><dd>{esc(record.rule_text())}</dd>"
        f"<dt>Recommended by the rule</dt><dd>{int(recommended.sum()):,} of {len(p):,} "
        f"(${rec_money:,.0f} asked)</dd>"
        f"<dt>Funded after overrides</dt><dd>{int(final.sum()):,} "
        f"(${float(asks[final].sum()):,.0f} asked)</dd></dl>"
    )
    capture = capture_view(p, asks, int(recommended.sum()), outcomes, record.rank_by or "probability")
    body += _figure(capture.figure, capture.sentence, "fig-capture")
    body += _table(
        capture.table,
        "Capture curve at every 10% of applicants",
        {
            "share_of_applicants": lambda v: f"{v:.0%}",
            "money": lambda v: f"${v:,.0f}",
            "expected_capture": lambda v: f"{v:.1%}",
            "realized_capture": lambda v: f"{v:.1%}",
        },
    )
    hist = plots.score_histogram(p, record.threshold if record.mode == "threshold" else None)
    body += _figure(
        hist, f"Chances of the {len(p):,} applicants; {int(recommended.sum()):,} recommended.", "fig-chances"
    )
    figures += 2
    sections.append(_section("The decision", body, "decision"))

    # 5. group rates
    report_groups, _ = batches.recorded_groups(batch_id, bundle, url=url)
    table = report_groups.table()
    body = (
        "<p>Decision after overrides. "
        + esc(
            "A ratio under 0.8 (four-fifths rule) says a group is selected less often than the "
            "most-selected one; "
            "it does not say why and is not proof of unfairness. Small groups are noisy."
        )
        + "</p>"
    )
    body += (
        "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in report_groups.sentences) + "</ul>"
        if report_groups.sentences
        else "<p>No group is flagged.</p>"
    )
    for field in ("AFFILIATION", "ORGANIZATION"):
        if (table["field"] == field).any():
            body += _figure(
                plots.group_rates_figure(table, field),
                plots.group_rates_summary(table, field),
                f"fig-groups-{field.lower()}",
            )
            figures += 1
    shown = table[
        [
            "field",
            "value",
            "n",
            "recommended",
            "selection_rate",
            "ratio_to_highest",
            "below four-fifths",
            "mean_chance",
        ]
    ]
    body += _table(
        shown,
        "Group rates",
        {
            "selection_rate": lambda v: f"{v:.1%}",
            "ratio_to_highest": lambda v: f"{v:.2f}",
            "mean_chance": lambda v: f"{v:.1%}",
        },
    )
    sections.append(_section("Group rates", body, "groups"))

    # 6. overrides and review resolutions
    overrides = storage.list_overrides(batch_id, url)
    body = (
        _table(
            overrides.assign(decision=overrides["decision"].map({1: "approve", 0: "decline", -1: "undo"})),
            "Overrides, in the order they were made",
        )
        if len(overrides)
        else "<p>No overrides.</p>"
    )
    queue = review.queue_table(batch_id, url)
    if len(queue):
        resolved = queue[queue["status"] == "resolved"]
        body += f"<p>Review queue: {len(queue) - len(resolved):,} open, {len(resolved):,} resolved.</p>"
        if len(resolved):
            body += _table(
                resolved[["source_line", "why", "decision", "reason", "resolved_by", "resolved_at"]],
                "Review resolutions",
            )
    else:
        body += "<p>No review queue for this batch.</p>"
    sections.append(_section("Overrides and review resolutions", body, "overrides"))

    # 7. top reasons
    reasons = top_reasons(current.get("reasons", pd.Series(dtype=str)))
    if len(reasons):
        body = _figure(
            plots.reasons_figure(reasons),
            f"The field named most often in the reasons: {reasons.iloc[0]['field']} "
            f"({reasons.iloc[0]['direction']} the chance, "
            f"{int(reasons.iloc[0]['applicants']):,} applicants).",
            "fig-reasons",
        ) + _table(reasons, "Fields named in the reasons")
        figures += 1
    else:
        body = "<p>No reasons were computed for this batch.</p>"
    sections.append(_section("Top reasons across the batch", body, "reasons"))

    # 8. recommended applicants
    funded = current[final]
    cols = [c for c in ["source_line", "EIN", "NAME", "success_probability", "reasons"] if c in funded]
    rows = funded[cols].copy()
    rows["success_probability"] = rows["success_probability"].astype(float)
    rows = rows.sort_values("success_probability", ascending=False, kind="stable")
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = (
            f"<p class='note'>The {MAX_TABLE_ROWS:,} most likely of {len(rows):,} funded applicants "
            "are listed; "
            "the results CSV from History has every row.</p>"
        )
        rows = rows.head(MAX_TABLE_ROWS)
    body = note + _table(
        rows,
        "Applicants funded after overrides (EIN, NAME, chance, reasons)",
        {"success_probability": lambda v: f"{v:.1%}"},
    )
    sections.append(_section("Recommended applicants", body, "applicants"))

    document = _page(f"Batch report {record.id}", sections, generated)
    facts = ReportFacts(
        batch_id, record.version, int(recommended.sum()), rec_money, int(final.sum()), len(overrides), figures
    )
    return document, facts


# -- the model card ------------------------------------------------------------------------------------
def card_html(card: object) -> str:
    """The model card as one self-contained HTML page (the same renderer as the batch report)."""
    from core.plots import calibration_plot

    td = card.training_data
    facts = [
        ("Version", card.version),
        ("Variant", f"{card.variant} ({card.label})"),
        ("Created", card.created),
        ("Content hash", card.content_hash),
        ("Decision threshold", f"{card.threshold:.2f}"),
        (
            "Training data",
            f"{td.source} ({'synthetic' if td.synthetic else 'real'}), {td.rows:,} rows, sha256 {td.sha256}",
        ),
    ]
    sections = [
        _section(
            "Summary",
            "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"
            f"<p>{esc(card.summary())}</p>",
            "summary",
        ),
        _section("Intended use", f"<p>{esc(card.intended_use)}</p><p>{esc(card.description)}</p>", "use"),
    ]
    rows = []
    for label, m in (
        ("all", card.test),
        ("first-time organisations", card.first_time),
        ("repeat organisations", card.repeat),
        ("grouped split", card.grouped),
    ):
        if m.get("n"):
            rows.append(
                {
                    "rows": label,
                    "n": m["n"],
                    "accuracy": m.get("accuracy"),
                    "roc_auc": m.get("roc_auc"),
                    "log_loss": m.get("log_loss"),
                    "ece": m.get("ece"),
                }
            )
    metrics = _table(
        pd.DataFrame(rows),
        f"Measured on {card.evaluation_text()}",
        {k: lambda v: f"{v:.4f}" for k in ("accuracy", "roc_auc", "log_loss", "ece")},
    )
    curves = card.test.get("curves", {})
    if curves.get("calibration"):
        metrics += _figure(
            calibration_plot({card.version: curves["calibration"]}),
            f"Calibration of {card.version} on its test split.",
            "fig-calibration",
        )
    sections.append(_section("Metrics", metrics, "metrics"))
    sections.append(
        _section(
            "Limitations",
            "<ul>" + "".join(f"<li>{esc(t)}</li>" for t in card.limitations()) + "</ul>",
            "limits",
        )
    )
    sections.append(
        _section(
            "Library versions",
            _table(pd.DataFrame(list(card.library_versions.items()), columns=["library", "version"])),
            "libs",
        )
    )
    return _page(f"Model card {card.version}", sections, datetime.now(UTC))


def write_html(path: Path, document: str) -> None:
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(document, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["batch_report", "capture_curve", "card_html", "write_html"]
