"""Pure plotly figure builders: data in (dicts/DataFrames from core), figure out.

No I/O and no streamlit here, so every figure can be unit-tested on its data.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.schema import FIELD_LABELS
from core.text import safe_text

# Okabe-Ito: distinguishable with the common colour-vision deficiencies; each variant keeps its
# colour, dash and marker on every chart and selection (never colour alone).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
MAX_CATEGORIES = 20
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross"]


def _variant_index(name: str) -> int:
    """Position of the variant a trace belongs to ('tuned' or a version id 'tuned-2026...')."""
    from core.variants import VARIANTS

    variant = str(name).split("-", 1)[0]
    order = list(VARIANTS)
    return order.index(variant) if variant in order else len(order) + sum(map(ord, variant)) % 2


def variant_style(name: str) -> dict:
    """The fixed colour, dash and marker of a variant (or of a version of it)."""
    i = _variant_index(name) % len(PALETTE)
    return {"color": PALETTE[i], "dash": DASHES[i], "symbol": SYMBOLS[i]}


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 50, "b": 45},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


SCORE_HISTOGRAM_TITLE = "Success probability of scored applicants"


def score_histogram_table(probabilities: np.ndarray, bins: int = 20) -> pd.DataFrame:
    """The bins and counts the score histogram draws (``series``, ``x`` the bin, ``y`` the count), as
    ``figure_table`` reads them back from the figure: a caption needs these, not the figure."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0), bins=edges)
    labels = [f"{lo:.2f}–{hi:.2f}" for lo, hi in itertools.pairwise(edges)]
    return pd.DataFrame(
        {"series": "applicants", "x": labels, "y": counts, "centre": (edges[:-1] + edges[1:]) / 2}
    )


def score_histogram_summary(probabilities: np.ndarray, bins: int = 20) -> str:
    """``figure_summary`` of ``score_histogram`` without building the figure (Plotly's validation of a
    figure costs more than the counts: 60-90 ms on every run of the Score page)."""
    return table_summary(SCORE_HISTOGRAM_TITLE, score_histogram_table(probabilities, bins))


def score_histogram(probabilities: np.ndarray, threshold: float | None = None, bins: int = 20) -> go.Figure:
    """Distribution of success probabilities, with the decision threshold marked. Counted here, so the
    figure carries ``bins`` bars, not one number per applicant."""
    table = score_histogram_table(probabilities, bins)
    fig = go.Figure(
        go.Bar(
            x=table["centre"].to_numpy(),
            y=table["y"].to_numpy(),
            width=1 / bins,
            hovertext=list(table["x"]),
            hovertemplate="chance %{hovertext}: %{y} applicants<extra></extra>",
            marker_color=PALETTE[0],
            name="applicants",
        )
    )
    fig.update_layout(bargap=0.02)
    if threshold is not None:
        fig.add_vline(
            x=threshold, line_dash="dash", line_color="#444", annotation_text=f"threshold {threshold:.2f}"
        )
    fig.update_xaxes(range=[0, 1])
    return _layout(fig, SCORE_HISTOGRAM_TITLE, "success probability", "applicants")


def confusion_matrix_figure(confusion: dict, title: str = "Confusion matrix") -> go.Figure:
    """2x2 heatmap from {'tn','fp','fn','tp'}."""
    z = [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=["predicted 0", "predicted 1"],
            y=["actual 0", "actual 1"],
            text=[[str(v) for v in row] for row in z],
            texttemplate="%{text}",
            colorscale="Greens",
            showscale=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, "", "")


def training_curves(
    histories: dict[str, dict], metric: str = "loss", best_epochs: dict[str, int] | None = None
) -> go.Figure:
    """Per-epoch curves per variant: training solid, validation dotted (said once, in the title);
    one legend entry per variant; its best epoch marked with a star."""
    fig = go.Figure()
    for name, history in histories.items():
        style = variant_style(name)
        train = history.get(metric, [])
        epochs = list(range(1, len(train) + 1))
        fig.add_trace(
            go.Scatter(x=epochs, y=train, name=str(name), legendgroup=str(name),
                       line={"color": style["color"]}, mode="lines")
        )  # fmt: skip
        val = history.get(f"val_{metric}")
        if val:
            fig.add_trace(
                go.Scatter(x=epochs, y=val, name=f"{name} validation", legendgroup=str(name),
                           showlegend=False, line={"color": style["color"], "dash": "dot"}, mode="lines")
            )  # fmt: skip
            best = (best_epochs or {}).get(name)
            if best and 1 <= best <= len(val):
                fig.add_trace(
                    go.Scatter(x=[best], y=[val[best - 1]], mode="markers", legendgroup=str(name),
                               showlegend=False, name=f"{name} best epoch {best}",
                               marker={"color": style["color"], "size": 11, "symbol": "star"})
                )  # fmt: skip
    title = f"{metric.replace('_', ' ').title()} per epoch (solid: training, dotted: validation, star: best)"
    return _layout(fig, title, "epoch", metric)


def learning_rate_curves(histories: dict[str, dict]) -> go.Figure:
    """Learning rate per epoch, unsmoothed (a step schedule shows as a step), log scale, ticks like 1e-3."""
    fig = go.Figure()
    values = []
    for name, history in histories.items():
        lr = history.get("learning_rate", [])
        values += [v for v in lr if v > 0]
        style = variant_style(name)
        fig.add_trace(
            go.Scatter(x=list(range(1, len(lr) + 1)), y=lr, name=str(name),
                       line={"color": style["color"], "shape": "hv", "dash": style["dash"]})
        )  # fmt: skip
    fig.update_yaxes(type="log", tickvals=lr_ticks(values), ticktext=[f"{t:.0e}" for t in lr_ticks(values)])
    return _layout(fig, "Learning rate per epoch", "epoch", "learning rate")


def lr_ticks(values: list[float]) -> list[float]:
    """Round log-scale ticks (1, 3 per decade) covering the values: [1e-4, 3e-4, 1e-3, 3e-3]."""
    if not values:
        return []
    lo, hi = np.floor(np.log10(min(values))), np.ceil(np.log10(max(values)))
    ticks = [m * 10**e for e in range(int(lo), int(hi) + 1) for m in (1, 3)]
    return [t for t in ticks if min(values) / 3.01 <= t <= max(values) * 3.01]


def roc_curves(curves: dict[str, dict], aucs: dict[str, float] | None = None) -> go.Figure:
    """ROC curves overlaid; ``curves[variant] = {'fpr': [...], 'tpr': [...]}``."""
    fig = go.Figure()
    for variant, c in curves.items():
        auc = (aucs or {}).get(variant)
        label = f"{variant} (AUC {auc:.3f})" if auc is not None else variant
        style = variant_style(variant)
        fig.add_trace(
            go.Scatter(
                x=c["fpr"], y=c["tpr"], name=label, line={"color": style["color"], "dash": style["dash"]}
            )
        )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"color": "#bbb", "dash": "dot"}))
    return _layout(fig, "ROC curve (test split)", "false positive rate", "true positive rate")


def pr_curves(curves: dict[str, dict], base_rate: float | None = None) -> go.Figure:
    """Precision-recall curves overlaid; ``curves[variant] = {'recall': [...], 'precision': [...]}``."""
    fig = go.Figure()
    for variant, c in curves.items():
        style = variant_style(variant)
        fig.add_trace(
            go.Scatter(x=c["recall"], y=c["precision"], name=variant,
                       line={"color": style["color"], "dash": style["dash"]})
        )  # fmt: skip
    if base_rate is not None:
        fig.add_hline(y=base_rate, line_dash="dot", line_color="#bbb", annotation_text="base rate")
    return _layout(fig, "Precision-recall curve (test split)", "recall", "precision")


def calibration_plot(bins: dict[str, list[dict]]) -> go.Figure:
    """Reliability diagram: observed success rate against mean predicted probability per bin."""
    fig = go.Figure()
    for variant, rows in bins.items():
        style = variant_style(variant)
        fig.add_trace(
            go.Scatter(
                x=[r["mean_predicted"] for r in rows],
                y=[r["observed_rate"] for r in rows],
                mode="lines+markers",
                name=variant,
                line={"color": style["color"], "dash": style["dash"]},
                marker={"symbol": style["symbol"]},
                customdata=[r["count"] for r in rows],
                hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f}<br>%{customdata} rows",
            )
        )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="perfect", line={"color": "#bbb", "dash": "dot"}))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return _layout(fig, "Calibration (test split)", "mean predicted probability", "observed success rate")


def importance_bar(importance: pd.DataFrame) -> go.Figure:
    """Mean |attribution| per field (probability points), largest on top."""
    df = importance.sort_values("mean_abs")
    fig = go.Figure(go.Bar(x=df["mean_abs"] * 100, y=df["label"], orientation="h", marker_color=PALETTE[0]))
    return _layout(fig, "Global importance: mean |effect| on the chance", "probability points", "")


def attribution_distribution(distribution: pd.DataFrame, order: list[str] | None = None) -> go.Figure:
    """Spread of attributions per field across applicants (one box per field)."""
    fields = order or list(dict.fromkeys(distribution["field"]))
    fig = go.Figure()
    for field in reversed(fields):  # horizontal traces stack upwards: the first field ends on top
        part = distribution[distribution["field"] == field]
        fig.add_trace(
            go.Box(
                x=part["attribution"] * 100,
                name=FIELD_LABELS.get(field, field),
                text=[safe_text(v, 60) for v in part["value"]],
                boxpoints="outliers",
                marker_color=PALETTE[0],
                orientation="h",
                hovertemplate="%{text}: %{x:.1f} points",
            )
        )
    fig.update_layout(showlegend=False)
    return _layout(fig, "Distribution of effects per field", "probability points", "")


def waterfall(contributions: pd.DataFrame, base_value: float, probability: float) -> go.Figure:
    """One applicant: from the average chance to theirs, field by field."""
    labels = [
        f"{FIELD_LABELS.get(f, f)} = {safe_text(v, 40)}"
        for f, v in zip(contributions["field"], contributions["value"])
    ]
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            measure=["absolute", *["relative"] * len(contributions), "total"],
            y=["average applicant", *labels, "this applicant"],
            x=[base_value * 100, *(contributions["attribution"] * 100), probability * 100],
            text=[
                f"{base_value:.0%}",
                *[f"{v * 100:+.1f}" for v in contributions["attribution"]],
                f"{probability:.0%}",
            ],
            increasing={"marker": {"color": "#2E7D5B"}},
            decreasing={"marker": {"color": "#D62728"}},
            totals={"marker": {"color": "#1F77B4"}},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Why this score", "chance of success (%)", "")


def dependence(dep: pd.DataFrame, field: str) -> go.Figure:
    """Field value against its attribution; a log x-axis for amounts."""
    fig = go.Figure()
    if field == "ASK_AMT":
        fig.add_trace(
            go.Scatter(x=dep["value"], y=dep["attribution"] * 100, mode="markers", marker_color=PALETTE[0])
        )
        fig.update_xaxes(type="log")
    else:
        top = dep["value"].value_counts().index[:MAX_CATEGORIES]  # NAME: the 20 most frequent only
        dep = dep[dep["value"].isin(top)]
        fig.add_trace(
            go.Box(
                x=[safe_text(v, 40) for v in dep["value"]],
                y=dep["attribution"] * 100,
                boxpoints="all",
                marker_color=PALETTE[0],
            )
        )
    title = f"Effect of {FIELD_LABELS.get(field, field)}"
    if field != "ASK_AMT" and dep["value"].nunique() >= MAX_CATEGORIES:
        title += f" ({MAX_CATEGORIES} most frequent values)"
    return _layout(fig, title, FIELD_LABELS.get(field, field), "probability points")


def monitoring_trend(history: pd.DataFrame) -> go.Figure:
    """Estimated accuracy (with its 90% interval) and realized accuracy per batch over time, one colour,
    dash and marker per model version; realized points are hollow diamonds."""
    fig = go.Figure()
    for version, rows in history.groupby("model_version", sort=False):
        style = variant_style(version)
        label = safe_text(str(version))
        low = rows["estimated_accuracy"] - rows["estimated_low"]
        high = rows["estimated_high"] - rows["estimated_accuracy"]
        fig.add_trace(
            go.Scatter(
                x=rows["recorded"], y=rows["estimated_accuracy"], name=f"estimated · {label}",
                mode="lines+markers", line={"color": style["color"], "dash": style["dash"]},
                marker={"symbol": style["symbol"], "size": 8},
                error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
            )
        )  # fmt: skip
        real = rows.dropna(subset=["realized_accuracy"])
        if len(real):
            fig.add_trace(
                go.Scatter(
                    x=real["recorded"], y=real["realized_accuracy"], name=f"realized · {label}",
                    mode="markers", marker={"symbol": "diamond-open", "size": 12, "color": style["color"],
                                            "line": {"width": 2}},
                )
            )  # fmt: skip
    return _layout(fig, "Accuracy by batch: estimated at scoring time and realized", "recorded", "accuracy")


def monitoring_trend_summary(history: pd.DataFrame) -> str:
    """The trend chart in one sentence."""
    if history.empty:
        return "No batch recorded yet."
    checked = history[history["data_checks"] != "not checked"]
    failed = int((history["data_checks"] == "Fail").sum())
    real = history.dropna(subset=["realized_accuracy"])
    text = (
        f"{len(history)} batches; {len(checked)} with data checks, {failed} of them failed. "
        f"Estimated accuracy ranges from {history['estimated_accuracy'].min():.1%} to "
        f"{history['estimated_accuracy'].max():.1%}."
    )
    if len(real):
        gap = (real["estimated_accuracy"] - real["realized_accuracy"]).abs().mean()
        text += (
            f" Outcomes arrived for {len(real)}; estimated and realized accuracy differ by "
            f"{gap:.1%} on average."
        )
    return text


def group_rates_figure(table: pd.DataFrame, field_name: str) -> go.Figure:
    """Selection rate per group of one field with its 95% interval; the four-fifths line of the highest
    sizeable group; flagged groups drawn hatched and labelled, never by colour alone."""
    rows = table[table["field"] == field_name]
    labels = [safe_text(str(v)) for v in rows["value"]]
    flagged = rows["flag"].to_numpy(dtype=bool)
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=rows["selection_rate"],
            error_y={
                "type": "data", "symmetric": False,
                "array": (rows["selection_high"] - rows["selection_rate"]).fillna(0),
                "arrayminus": (rows["selection_rate"] - rows["selection_low"]).fillna(0),
            },
            marker={"color": [PALETTE[1] if f else PALETTE[0] for f in flagged],
                    "pattern": {"shape": ["/" if f else "" for f in flagged]}},
            text=["below 4/5" if f else "" for f in flagged],
            textposition="outside",
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )  # fmt: skip
    sizeable = rows[~rows["small"].astype(bool)]
    if len(sizeable):
        top = float(sizeable["selection_rate"].max())
        fig.add_hline(y=0.8 * top, line_dash="dash", annotation_text="four-fifths of the highest rate")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return _layout(fig, f"Selection rate by {field_name}", field_name, "share recommended")


def group_rates_summary(table: pd.DataFrame, field_name: str) -> str:
    rows = table[table["field"] == field_name]
    if rows.empty:
        return f"No groups for {field_name}."
    top = rows.loc[rows["selection_rate"].idxmax()]
    low = rows.loc[rows["selection_rate"].idxmin()]
    flagged = int(rows["flag"].sum())
    return (
        f"{len(rows)} groups of {field_name}: selection rates from {low['selection_rate']:.0%} "
        f"({safe_text(str(low['value']))}) to {top['selection_rate']:.0%} ({safe_text(str(top['value']))}); "
        f"{flagged} below four-fifths of the highest sizeable group."
    )


def weak_spots_figure(spots: pd.DataFrame) -> go.Figure:
    """Error rate of each weak spot with its 95% interval, against the overall error rate."""
    fig = go.Figure(
        go.Bar(
            y=[safe_text(str(r)) for r in spots["slice"]],
            x=spots["error_rate"],
            orientation="h",
            marker={"color": PALETTE[1], "pattern": {"shape": "/"}},
            error_x={"type": "data", "symmetric": False,
                     "array": spots["error_high"] - spots["error_rate"],
                     "arrayminus": spots["error_rate"] - spots["error_low"]},
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )  # fmt: skip
    if len(spots):
        fig.add_vline(
            x=float(spots["overall_error_rate"].iloc[0]), line_dash="dash", annotation_text="overall"
        )
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Weak spots: where the decision is wrong most", "error rate", "")


# -- every chart readable without seeing it ---------------------------------------------------------
def _title(fig: go.Figure) -> str:
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else ""
    return str(title)


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """The numbers a figure draws, as a table: one row per point of each trace (histograms as their
    bins and counts, heatmaps cell by cell)."""
    rows: list[dict] = []
    for i, trace in enumerate(fig.data):
        name = str(trace.name) if getattr(trace, "name", None) else f"series {i + 1}"
        kind = trace.type
        if kind == "histogram":
            values = np.asarray(trace.x if trace.x is not None else [], dtype=float)
            xb = trace.xbins
            if xb is not None and xb.size:
                edges = np.arange(float(xb.start), float(xb.end) + float(xb.size) / 2, float(xb.size))
            else:
                edges = np.histogram_bin_edges(values, bins=20) if len(values) else np.array([0.0, 1.0])
            counts, edges = np.histogram(values, bins=edges)
            for lo, hi, c in zip(edges[:-1], edges[1:], counts):
                rows.append({"series": name, "x": f"{lo:.2f}–{hi:.2f}", "y": int(c)})
        elif kind == "heatmap":
            z = np.asarray(trace.z)
            xs = list(trace.x) if trace.x is not None else list(range(z.shape[1]))
            ys = list(trace.y) if trace.y is not None else list(range(z.shape[0]))
            for r, yv in enumerate(ys):
                for c, xv in enumerate(xs):
                    rows.append({"series": name, "x": xv, "y": yv, "value": z[r, c]})
        else:
            xs = list(trace.x) if getattr(trace, "x", None) is not None else []
            if kind == "bar" and trace.hovertext is not None and len(trace.hovertext) == len(xs):
                xs = list(trace.hovertext)  # pre-counted bins: the bin, not its centre
            ys = list(trace.y) if getattr(trace, "y", None) is not None else []
            for x, y in zip(xs, ys):
                rows.append({"series": name, "x": x, "y": y})
    frame = pd.DataFrame(rows)
    for col in frame.columns:  # labels in figures are escaped for Plotly: the table shows them as text
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: html_unescape(v) if isinstance(v, str) else v)
    return frame


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def figure_summary(fig: go.Figure) -> str:
    """What a figure shows and its key numbers, in one sentence (generated from its data)."""
    return table_summary(html_unescape(_title(fig)) or "Chart", figure_table(fig))


def table_summary(title: str, table: pd.DataFrame) -> str:
    """One sentence of a figure's numbers (``figure_table``'s ``series``, ``x``, ``y`` and ``value``
    columns; others are ignored): each series' size, highest and lowest point."""
    if table.empty:
        return f"{title}: no data."
    parts = []
    for series, rows in table.groupby("series", sort=False):
        value = "value" if "value" in rows and rows["value"].notna().any() else "y"
        numeric = pd.to_numeric(rows[value], errors="coerce")
        if numeric.notna().any():
            top = rows.loc[numeric.idxmax()]
            low = rows.loc[numeric.idxmin()]
            parts.append(
                f"{series}: {len(rows)} points, highest {_num(numeric.max())} at {top['x']}, "
                f"lowest {_num(numeric.min())} at {low['x']}"
            )
        if len(parts) >= 4:
            parts.append("…")
            break
    return f"{title}. " + "; ".join(parts) + "."


def _num(value: float) -> str:
    value = float(value)
    if value != value:  # NaN
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


CURVE_POINTS = 501  # a curve is drawn through at most this many of its points (the ends included)


def thin_curve(curve: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    """Evenly spaced rows of a long cumulative curve, first and last kept: a 100,000-row batch's
    curve looks the same through 501 points, and the page and report do not carry every row."""
    if len(curve) <= points:
        return curve
    return curve.iloc[np.unique(np.linspace(0, len(curve) - 1, points).round().astype(int))]


def capture_figure(curve: pd.DataFrame, funded: int) -> go.Figure:
    """The capture curve (drawn through at most ``CURVE_POINTS`` points) and the current rule's point."""
    full, curve = curve, thin_curve(curve)
    fig = go.Figure()
    for column, name, colour, dash in (
        ("expected_capture", "expected", PALETTE[0], "solid"),
        ("realized_capture", "realized", PALETTE[1], "dash"),
    ):
        if column in curve:
            fig.add_trace(
                go.Scatter(
                    x=curve["share_of_applicants"],
                    y=curve[column],
                    name=name,
                    line={"color": colour, "dash": dash},
                )
            )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], name="funding at random", line={"color": "#555", "dash": "dot"})
    )
    if 0 < funded <= len(full):
        row = full.iloc[funded - 1]
        fig.add_trace(
            go.Scatter(
                x=[row["share_of_applicants"]],
                y=[row["expected_capture"]],
                mode="markers+text",
                name="the current rule",
                text=["current rule"],
                textposition="bottom right",
                marker={"symbol": "diamond", "size": 12, "color": PALETTE[2]},
            )
        )
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(tickformat=".0%")
    return _layout(
        fig,
        "Capture curve: share of successes by share of applicants funded",
        "applicants funded",
        "successes captured",
    )


def reasons_figure(table: pd.DataFrame) -> go.Figure:
    labels = [f"{safe_text(f)} ({d})" for f, d in zip(table["field"], table["direction"])]
    fig = go.Figure(
        go.Bar(
            x=table["applicants"],
            y=labels,
            orientation="h",
            marker={
                "color": [PALETTE[0] if d == "raised" else PALETTE[1] for d in table["direction"]],
                "pattern": {"shape": ["" if d == "raised" else "/" for d in table["direction"]]},
            },
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Top reasons across the batch", "applicants whose reasons name it", "")
