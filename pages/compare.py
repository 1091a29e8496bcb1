"""Compare: every variant's metrics, training curves, ROC/PR, confusion, calibration, pairwise tests."""

from __future__ import annotations

import streamlit as st

from core import evaluation, plots
from core.scoring import PROBABILITY
from pages.common import friendly_errors, get_bundle, metas, require

LOWER_IS_BETTER = {"log_loss", "brier", "ece", "parameters", "epochs", "train_seconds"}

require("compare")
st.title("Compare model variants")
all_metas, errors = metas()
for message in errors.values():
    st.error(message)
if not all_metas:
    st.warning("No trained models yet. Train them on the Train page.")
    st.stop()

table = evaluation.comparison_table(all_metas)
metric_cols = [c for c in table.columns if c != "variant" and table[c].notna().any()]
table = table[["variant", *metric_cols]]
higher = [c for c in metric_cols if c not in LOWER_IS_BETTER]
lower = [c for c in metric_cols if c in LOWER_IS_BETTER]
styled = (
    table.style.highlight_max(subset=higher, color="#cdebd9")
    .highlight_min(subset=lower, color="#cdebd9")
    .format(precision=4, na_rep="–")
)
st.caption(
    "Held-out test split (20% of the training file, never used for any choice). "
    "`new_org_accuracy`: test rows whose organisation was not in training. `grouped_*`: a split by "
    "organisation NAME (no organisation on both sides), where trained with --grouped. "
    "Best per column is shaded."
)
st.dataframe(styled, hide_index=True, key="compare_table")

chosen = st.multiselect("Variants to plot", list(all_metas), default=list(all_metas), key="compare_variants")
if not chosen:
    st.stop()

histories: dict[str, dict] = {}
with friendly_errors():
    for v in chosen:
        histories[v] = get_bundle(v).history
best = {v: all_metas[v].get("best_epoch") for v in chosen}
c1, c2 = st.columns(2)
c1.plotly_chart(plots.training_curves(histories, "loss", best), key="compare_loss")
c2.plotly_chart(plots.training_curves(histories, "accuracy", best), key="compare_accuracy")
st.plotly_chart(plots.learning_rate_curves(histories), key="compare_lr")

tests = {v: all_metas[v]["metrics"]["test"] for v in chosen}
c1, c2 = st.columns(2)
c1.plotly_chart(
    plots.roc_curves(
        {v: t["curves"]["roc"] for v, t in tests.items() if "roc" in t["curves"]},
        {v: t["roc_auc"] for v, t in tests.items()},
    ),
    key="compare_roc",
)
c2.plotly_chart(
    plots.pr_curves(
        {v: t["curves"]["pr"] for v, t in tests.items() if "pr" in t["curves"]},
        next(iter(tests.values())).get("base_rate"),
    ),
    key="compare_pr",
)

c1, c2 = st.columns(2)
with c1:
    focus = st.selectbox("Confusion matrix of", chosen, key="compare_confusion_variant")
    threshold = st.slider("at threshold", 0.0, 1.0, 0.5, 0.01, key="compare_threshold")
    with friendly_errors():
        preds = get_bundle(focus).test_predictions()
        at = evaluation.metrics_at_threshold(preds["IS_SUCCESSFUL"], preds[PROBABILITY], threshold)
        st.plotly_chart(
            plots.confusion_matrix_figure(at["confusion"], f"{focus} at {threshold:.2f}"),
            key="compare_confusion",
        )
        st.caption(
            f"accuracy {at['accuracy']:.3f} · precision {at['precision']:.3f} · recall {at['recall']:.3f} · "
            f"F1 {at['f1']:.3f}"
        )
c2.plotly_chart(
    plots.calibration_plot({v: t["curves"]["calibration"] for v, t in tests.items()}),
    key="compare_calibration",
)

st.subheader("Pairwise")
if len(all_metas) < 2:
    st.info("Train at least two variants to compare them pairwise.")
    st.stop()
names = list(all_metas)
p1, p2 = st.columns(2)
a = p1.selectbox("Variant A", names, index=0, key="compare_a")
default_b = names.index("tuned") if "tuned" in names and a != "tuned" else 1
b = p2.selectbox("Variant B", names, index=min(len(names) - 1, default_b), key="compare_b")
if a == b:
    st.info("Choose two different variants.")
    st.stop()
with friendly_errors():
    pair = evaluation.compare_pair(a, get_bundle(a).test_predictions(), b, get_bundle(b).test_predictions())
    mc, boot = pair["mcnemar"], pair["bootstrap"]
    q1, q2, q3 = st.columns(3)
    q1.metric(f"Accuracy {a} − {b}", f"{boot['difference']:+.2%}")
    q2.metric("95% bootstrap interval", f"{boot['ci_low']:+.2%} to {boot['ci_high']:+.2%}")
    q3.metric("McNemar p-value", f"{mc['p_value']:.3g}")
    st.caption(
        f"On the {pair['n']:,} test rows, only {a} is right on {mc['only_a_right']:,} and only {b} on "
        f"{mc['only_b_right']:,}. A p-value under 0.05 means the difference is unlikely to be chance."
    )
    st.markdown(f"**Applicants they disagree on** ({len(pair['disagreements']):,})")
    st.dataframe(pair["disagreements"], hide_index=True, key="compare_disagree")
