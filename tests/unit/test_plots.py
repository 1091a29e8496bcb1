"""Figure builders put the data where it belongs (checked on the traces, not by eye)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core import plots


def test_score_histogram_marks_threshold() -> None:
    fig = plots.score_histogram(np.array([0.1, 0.5, 0.9, 0.92, 1.0]), threshold=0.6)
    assert isinstance(fig, go.Figure)
    counts = list(fig.data[0].y)
    assert len(counts) == 20 and sum(counts) == 5  # counted per bin, not one number per applicant
    assert counts[2] == 1 and counts[10] == 1 and counts[18] == 2 and counts[19] == 1  # 1.0 in the last bin
    assert fig.layout.shapes[0].x0 == 0.6
    table = plots.figure_table(fig)
    assert table["x"].iloc[18] == "0.90–0.95" and table["y"].iloc[18] == 2


@pytest.mark.parametrize(
    "probabilities",
    [[0.1, 0.5, 0.9, 0.92, 1.0], [], [0.3] * 7, [0.0, 1.0], np.linspace(0, 1, 1001), [-0.2, 1.3, 0.55]],
)
def test_the_score_histogram_caption_is_the_figures_own_summary(probabilities: list[float]) -> None:
    """The Score page's caption is computed without building the figure: it must say what the figure's
    summary says, word for word."""
    scores = np.asarray(probabilities, dtype=float)
    figure = plots.score_histogram(scores, threshold=0.5)
    assert plots.score_histogram_summary(scores) == plots.figure_summary(figure)


def test_the_score_histogram_caption_names_the_fullest_and_emptiest_bins() -> None:
    assert plots.score_histogram_summary(np.array([0.1, 0.5, 0.9, 0.92, 1.0])) == (
        "Success probability of scored applicants. applicants: 20 points, highest 2 at 0.90–0.95, "
        "lowest 0 at 0.00–0.05."
    )


def test_confusion_matrix_layout() -> None:
    fig = plots.confusion_matrix_figure({"tn": 5, "fp": 2, "fn": 1, "tp": 7})
    assert [list(r) for r in fig.data[0].z] == [[5, 2], [1, 7]]
    assert list(fig.data[0].y) == ["actual 0", "actual 1"]


def test_training_curves_overlay_train_validation_and_best_epoch() -> None:
    histories = {
        "a": {"loss": [0.7, 0.6, 0.55], "val_loss": [0.68, 0.62, 0.64]},
        "b": {"loss": [0.9, 0.8], "val_loss": [0.85, 0.8]},
    }
    fig = plots.training_curves(histories, "loss", {"a": 2, "b": 2})
    names = [t.name for t in fig.data]
    assert names == ["a", "a validation", "a best epoch 2", "b", "b validation", "b best epoch 2"]
    assert list(fig.data[1].y) == [0.68, 0.62, 0.64]
    assert fig.data[2].x == (2,) and fig.data[2].y == (0.62,)


def test_learning_rate_is_a_step_not_smoothed() -> None:
    fig = plots.learning_rate_curves({"lr_schedule": {"learning_rate": [1e-3] * 10 + [1e-4] * 3}})
    trace = fig.data[0]
    assert trace.line.shape == "hv" and list(trace.y)[9:11] == [1e-3, 1e-4]
    assert fig.layout.yaxis.type == "log"


def test_roc_pr_and_calibration() -> None:
    roc = plots.roc_curves({"a": {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]}}, {"a": 0.8})
    assert roc.data[0].name == "a (AUC 0.800)" and list(roc.data[0].y) == [0, 0.8, 1]
    pr = plots.pr_curves({"a": {"recall": [0, 1], "precision": [1, 0.5]}}, base_rate=0.5)
    assert list(pr.data[0].x) == [0, 1]
    cal = plots.calibration_plot(
        {
            "a": [
                {"mean_predicted": 0.2, "observed_rate": 0.25, "count": 10},
                {"mean_predicted": 0.8, "observed_rate": 0.7, "count": 5},
            ]
        }
    )
    assert list(cal.data[0].x) == [0.2, 0.8] and list(cal.data[0].customdata) == [10, 5]


def test_explanation_figures() -> None:
    imp = pd.DataFrame(
        {
            "field": ["NAME", "ASK_AMT"],
            "label": ["Organisation name", "Amount asked"],
            "mean_abs": [0.2, 0.05],
            "mean": [0.0, 0.0],
        }
    )
    bar = plots.importance_bar(imp)
    assert list(bar.data[0].y) == ["Amount asked", "Organisation name"]
    assert np.allclose(bar.data[0].x, [5, 20])
    wf_df = pd.DataFrame(
        {"field": ["NAME", "ASK_AMT"], "value": ["X CLUB", "5,000"], "attribution": [0.1, -0.02]}
    )
    wf = plots.waterfall(wf_df, 0.5, 0.58)
    assert list(wf.data[0].measure) == ["absolute", "relative", "relative", "total"]
    assert np.allclose(wf.data[0].x, [50, 10, -2, 58])
    dist = pd.DataFrame(
        {"applicant": [0, 1], "field": ["NAME", "NAME"], "attribution": [0.1, -0.1], "value": ["a", "b"]}
    )
    assert len(plots.attribution_distribution(dist).data) == 1
    dep = plots.dependence(pd.DataFrame({"value": [5000.0, 1e6], "attribution": [0.01, -0.03]}), "ASK_AMT")
    assert dep.layout.xaxis.type == "log" and np.allclose(dep.data[0].y, [1, -3])


def test_each_variant_keeps_its_colour_and_dash_on_every_chart_and_selection() -> None:
    from core.plots import roc_curves, training_curves, variant_style

    hist = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}
    roc = {"fpr": [0, 1], "tpr": [0, 1]}
    alone = training_curves({"tuned-2026-a": hist}, "loss")
    together = training_curves({"baseline-1": hist, "l2-1": hist, "tuned-2026-a": hist}, "loss")
    tuned = next(t for t in together.data if t.name == "tuned-2026-a")
    assert alone.data[0].line.color == tuned.line.color == variant_style("tuned")["color"]
    assert roc_curves({"tuned-x": roc}).data[0].line.color == variant_style("tuned")["color"]
    styles = {v: variant_style(v) for v in ("baseline", "l2", "lr_schedule", "batchnorm", "tuned")}
    assert len({s["color"] for s in styles.values()}) == 5 and len({s["dash"] for s in styles.values()}) == 5


def test_training_legend_has_one_entry_per_variant() -> None:
    from core.plots import training_curves

    hist = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7]}
    fig = training_curves({"baseline": hist, "tuned": hist}, "loss", {"baseline": 2, "tuned": 2})
    assert [t.name for t in fig.data if t.showlegend is not False] == ["baseline", "tuned"]
    assert "dotted: validation" in fig.layout.title.text


def test_learning_rate_ticks_are_readable() -> None:
    from core.plots import learning_rate_curves, lr_ticks

    assert lr_ticks([3e-3, 3e-4]) == pytest.approx([1e-4, 3e-4, 1e-3, 3e-3])
    fig = learning_rate_curves({"lr_schedule": {"learning_rate": [3e-3] * 10 + [3e-4] * 5}})
    assert list(fig.layout.yaxis.ticktext) == ["1e-04", "3e-04", "1e-03", "3e-03"]


def test_importance_and_distribution_share_field_order_and_labels() -> None:
    from core.plots import attribution_distribution, importance_bar

    importance = pd.DataFrame(
        {"field": ["ASK_AMT", "NAME", "USE_CASE"], "label": ["Amount asked", "Organisation name", "Use case"],
         "mean_abs": [0.3, 0.2, 0.1], "mean": [0, 0, 0]}
    )  # fmt: skip
    dist = pd.DataFrame(
        {"applicant": [0, 0, 0], "field": ["ASK_AMT", "NAME", "USE_CASE"], "attribution": [0.1, 0.2, 0.3],
         "value": ["5,000", "X", "Other"]}
    )  # fmt: skip
    bar = importance_bar(importance)
    boxes = attribution_distribution(dist, list(importance["field"]))
    assert list(bar.data[0].y) == [t.name for t in boxes.data]  # bottom to top, the same order
    assert list(bar.data[0].y)[-1] == "Amount asked"


def test_name_dependence_shows_the_20_most_frequent_values() -> None:
    from core.plots import dependence

    values = [f"ORG {i}" for i in range(60) for _ in range(60 - i)]
    dep = pd.DataFrame({"value": values, "attribution": [0.01] * len(values)})
    fig = dependence(dep, "NAME")
    assert sorted(set(fig.data[0].x)) == sorted(f"ORG {i}" for i in range(20))
    assert fig.layout.title.text == "Effect of Organisation name (20 most frequent values)"
