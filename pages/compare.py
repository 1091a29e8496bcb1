"""Compare: model versions' metrics, training curves, ROC/PR, confusion, calibration, pairwise tests."""

from __future__ import annotations

import streamlit as st

from core import evaluation, plots
from core.scoring import PROBABILITY
from pages.common import friendly_errors, get_bundle, page_setup, version_label, versions

LOWER_IS_BETTER = {"log_loss", "brier", "ece", "parameters", "epochs", "train_seconds"}

page_setup("compare")
st.title("Compare model versions")
cards, errors, live = versions()
if not cards:
    st.warning("No trained models yet. Train them on the Train page.")
    st.stop()

newest: dict[str, str] = {}
for v, card in cards.items():  # cards come newest first within a variant
    newest.setdefault(card.variant, v)
default = list(dict.fromkeys([*([live] if live in cards else []), *newest.values()]))
chosen = st.multiselect(
    "Versions to compare",
    list(cards),
    default=default,
    format_func=lambda v: version_label(cards[v], live),
    key="compare_versions",
)
if not chosen:
    st.stop()

table = evaluation.comparison_table({v: cards[v] for v in chosen})
metric_cols = [c for c in table.columns if c not in ("version", "variant", "data") and table[c].notna().any()]
table = table[["version", "variant", "data", *metric_cols]]
higher = [c for c in metric_cols if c not in LOWER_IS_BETTER]
lower = [c for c in metric_cols if c in LOWER_IS_BETTER]
styled = (
    table.style.highlight_max(subset=higher, color="#cdebd9")
    .highlight_min(subset=lower, color="#cdebd9")
    .format(precision=4, na_rep="–")
)
st.caption(
    "Held-out test split of each version's training file (20%, never used for any choice). "
    "new_org_accuracy: test rows whose organisation was not in training. grouped_*: a split by "
    "organisation NAME (no organisation on both sides), where trained with --grouped. "
    "Best per column is shaded."
)
st.dataframe(styled, hide_index=True, key="compare_table")

histories: dict[str, dict] = {}
with friendly_errors():
    for v in chosen:
        histories[v] = get_bundle(v).history
best = {v: cards[v].best_epoch for v in chosen}
c1, c2 = st.columns(2)
c1.plotly_chart(plots.training_curves(histories, "loss", best), key="compare_loss")
c2.plotly_chart(plots.training_curves(histories, "accuracy", best), key="compare_accuracy")
st.plotly_chart(plots.learning_rate_curves(histories), key="compare_lr")

tests = {v: cards[v].test for v in chosen}
c1, c2 = st.columns(2)
c1.plotly_chart(
    plots.roc_curves(
        {v: t["curves"]["roc"] for v, t in tests.items() if "roc" in t.get("curves", {})},
        {v: t.get("roc_auc") for v, t in tests.items()},
    ),
    key="compare_roc",
)
c2.plotly_chart(
    plots.pr_curves(
        {v: t["curves"]["pr"] for v, t in tests.items() if "pr" in t.get("curves", {})},
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
    plots.calibration_plot({v: t["curves"]["calibration"] for v, t in tests.items() if "curves" in t}),
    key="compare_calibration",
)

st.subheader("Pairwise")
if len(chosen) < 2:
    st.info("Choose at least two versions to compare them pairwise.")
    st.stop()
p1, p2 = st.columns(2)
a = p1.selectbox("Version A", chosen, index=0, key="compare_a")
b = p2.selectbox("Version B", chosen, index=1, key="compare_b")
if a == b:
    st.info("Choose two different versions.")
    st.stop()
with friendly_errors():
    pair = evaluation.compare_pair(a, get_bundle(a).test_predictions(), b, get_bundle(b).test_predictions())
    mc, boot = pair["mcnemar"], pair["bootstrap"]
    q1, q2, q3 = st.columns(3)
    q1.metric("Accuracy A − B", f"{boot['difference']:+.2%}")
    q2.metric("95% bootstrap interval", f"{boot['ci_low']:+.2%} to {boot['ci_high']:+.2%}")
    q3.metric("McNemar p-value", f"{mc['p_value']:.3g}")
    st.caption(
        f"On the {pair['n']:,} test rows, only A is right on {mc['only_a_right']:,} and only B on "
        f"{mc['only_b_right']:,}. A p-value under 0.05 means the difference is unlikely to be chance."
    )
    st.markdown(f"**Applicants they disagree on** ({len(pair['disagreements']):,})")
    st.dataframe(pair["disagreements"], hide_index=True, key="compare_disagree")
