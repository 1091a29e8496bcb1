"""Figure builders put the data where it belongs (checked on the traces, not by eye)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core import plots


def test_score_histogram_marks_threshold() -> None:
    fig = plots.score_histogram(np.array([0.1, 0.5, 0.9]), threshold=0.6)
    assert isinstance(fig, go.Figure)
    assert list(fig.data[0].x) == [0.1, 0.5, 0.9]
    assert fig.layout.shapes[0].x0 == 0.6


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
    assert names == ["a train", "a validation", "a best epoch 2", "b train", "b validation", "b best epoch 2"]
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
