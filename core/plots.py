"""Pure plotly figure builders: data in (dicts/DataFrames from core), figure out.

No I/O and no streamlit here, so every figure can be unit-tested on its data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.schema import FIELD_LABELS
from core.text import safe_text

PALETTE = ["#2E7D5B", "#1F77B4", "#FF7F0E", "#9467BD", "#D62728", "#8C564B", "#17BECF"]


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


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


def score_histogram(probabilities: np.ndarray, threshold: float | None = None, bins: int = 20) -> go.Figure:
    """Distribution of success probabilities, with the decision threshold marked."""
    fig = go.Figure(
        go.Histogram(
            x=np.asarray(probabilities),
            xbins={"start": 0, "end": 1, "size": 1 / bins},
            marker_color=PALETTE[0],
        )
    )
    if threshold is not None:
        fig.add_vline(
            x=threshold, line_dash="dash", line_color="#444", annotation_text=f"threshold {threshold:.2f}"
        )
    fig.update_xaxes(range=[0, 1])
    return _layout(fig, "Success probability of scored applicants", "success probability", "applicants")


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
    """Per-epoch train (solid) and validation (dashed) curves per variant, best epoch marked."""
    fig = go.Figure()
    for i, (variant, history) in enumerate(histories.items()):
        color = _color(i)
        train = history.get(metric, [])
        epochs = list(range(1, len(train) + 1))
        fig.add_trace(go.Scatter(x=epochs, y=train, name=f"{variant} train", line={"color": color}))
        val = history.get(f"val_{metric}")
        if val:
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=val, name=f"{variant} validation", line={"color": color, "dash": "dash"}
                )
            )
            best = (best_epochs or {}).get(variant)
            if best and 1 <= best <= len(val):
                fig.add_trace(
                    go.Scatter(
                        x=[best],
                        y=[val[best - 1]],
                        mode="markers",
                        marker={"color": color, "size": 11, "symbol": "star"},
                        name=f"{variant} best epoch {best}",
                    )
                )
    return _layout(fig, f"{metric.replace('_', ' ').title()} per epoch", "epoch", metric)


def learning_rate_curves(histories: dict[str, dict]) -> go.Figure:
    """Learning rate per epoch, unsmoothed (a step schedule shows as a step), log scale."""
    fig = go.Figure()
    for i, (variant, history) in enumerate(histories.items()):
        lr = history.get("learning_rate", [])
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(lr) + 1)), y=lr, name=variant, line={"color": _color(i), "shape": "hv"}
            )
        )
    fig.update_yaxes(type="log")
    return _layout(fig, "Learning rate per epoch", "epoch", "learning rate")


def roc_curves(curves: dict[str, dict], aucs: dict[str, float] | None = None) -> go.Figure:
    """ROC curves overlaid; ``curves[variant] = {'fpr': [...], 'tpr': [...]}``."""
    fig = go.Figure()
    for i, (variant, c) in enumerate(curves.items()):
        auc = (aucs or {}).get(variant)
        label = f"{variant} (AUC {auc:.3f})" if auc is not None else variant
        fig.add_trace(go.Scatter(x=c["fpr"], y=c["tpr"], name=label, line={"color": _color(i)}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"color": "#bbb", "dash": "dot"}))
    return _layout(fig, "ROC curve (test split)", "false positive rate", "true positive rate")


def pr_curves(curves: dict[str, dict], base_rate: float | None = None) -> go.Figure:
    """Precision-recall curves overlaid; ``curves[variant] = {'recall': [...], 'precision': [...]}``."""
    fig = go.Figure()
    for i, (variant, c) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=c["recall"], y=c["precision"], name=variant, line={"color": _color(i)}))
    if base_rate is not None:
        fig.add_hline(y=base_rate, line_dash="dot", line_color="#bbb", annotation_text="base rate")
    return _layout(fig, "Precision-recall curve (test split)", "recall", "precision")


def calibration_plot(bins: dict[str, list[dict]]) -> go.Figure:
    """Reliability diagram: observed success rate against mean predicted probability per bin."""
    fig = go.Figure()
    for i, (variant, rows) in enumerate(bins.items()):
        fig.add_trace(
            go.Scatter(
                x=[r["mean_predicted"] for r in rows],
                y=[r["observed_rate"] for r in rows],
                mode="lines+markers",
                name=variant,
                line={"color": _color(i)},
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
    for field in fields:
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
        fig.add_trace(
            go.Box(
                x=[safe_text(v, 40) for v in dep["value"]],
                y=dep["attribution"] * 100,
                boxpoints="all",
                marker_color=PALETTE[0],
            )
        )
    return _layout(fig, f"Effect of {FIELD_LABELS.get(field, field)}", field, "probability points")
