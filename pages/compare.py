"""Compare: model versions' metrics, training curves, ROC/PR, confusion, calibration, pairwise tests."""

from __future__ import annotations

import streamlit as st

from core import evaluation, groups, plots
from core.scoring import PROBABILITY
from core.text import safe_text
from pages.common import (
    chart,
    cohort_picker,
    friendly_errors,
    get_bundle,
    group_panel,
    page_setup,
    version_label,
    versions,
)

LOWER_IS_BETTER = {"log_loss", "brier", "ece", "parameters", "epochs", "train_seconds"}


def _in_cohort(bundle: object):
    """The version's test predictions, only the chosen cohort's rows when one is chosen."""
    values, preds = groups.test_split_values(bundle)
    if cohort is None:
        return preds
    return preds[groups.cohort_mask(values, cohort)].reset_index(drop=True)


user = page_setup("compare")
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

cohort_name, cohort = cohort_picker("compare_cohort", "Cohort (filters the metrics, curves and tests below)")
cohort_tests: dict[str, dict] = {}
if cohort is not None:
    with friendly_errors():
        cohort_tests = {v: evaluation.cohort_test_report(get_bundle(v), cohort) for v in chosen}
    sizes = ", ".join(f"{cohort_tests[v].get('n', 0):,}" for v in chosen if v in cohort_tests)
    st.info(safe_text(f"Cohort {cohort_name}: {groups.describe_rule(cohort)}. Test rows in it: {sizes}."))
    if not cohort_tests or any(t.get("n", 0) == 0 for t in cohort_tests.values()):
        st.warning("The cohort has no test rows for at least one version; showing every test row instead.")
        cohort, cohort_tests = None, {}
table = evaluation.comparison_table({v: cards[v] for v in chosen}, cohort_tests)
metric_cols = [
    c
    for c in table.columns
    if c not in ("version", "variant", "data", "test_figures_from") and table[c].notna().any()
]
table = table[["version", "variant", "data", "test_figures_from", *metric_cols]]
higher = [c for c in metric_cols if c not in LOWER_IS_BETTER]
lower = [c for c in metric_cols if c in LOWER_IS_BETTER]
styled = (
    table.style.highlight_max(subset=higher, color="#cdebd9")
    .highlight_min(subset=lower, color="#cdebd9")
    .format(precision=4, na_rep="–")
)
st.caption(
    "Test figures: each version's own served network on the fixed evaluation rows of its history "
    "(20% of the rows, chosen by a stable hash of EIN: the same rows for every version, never trained "
    "on and never used for any choice). Versions trained before fixed evaluation rows existed say so in "
    "'test figures from'. new_org_accuracy: test rows whose organisation was not in training. "
    "grouped_*: a split by "
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
chart(plots.training_curves(histories, "loss", best), key="compare_loss", where=c1)
chart(plots.training_curves(histories, "accuracy", best), key="compare_accuracy", where=c2)
chart(plots.learning_rate_curves(histories), key="compare_lr")

tests = {v: cohort_tests.get(v, cards[v].test) for v in chosen}
c1, c2 = st.columns(2)
chart(
    plots.roc_curves(
        {v: t["curves"]["roc"] for v, t in tests.items() if "roc" in t.get("curves", {})},
        {v: t.get("roc_auc") for v, t in tests.items()},
    ),
    key="compare_roc",
    where=c1,
)
chart(
    plots.pr_curves(
        {v: t["curves"]["pr"] for v, t in tests.items() if "pr" in t.get("curves", {})},
        next(iter(tests.values())).get("base_rate"),
    ),
    key="compare_pr",
    where=c2,
)

c1, c2 = st.columns(2)
with c1:
    focus = st.selectbox("Confusion matrix of", chosen, key="compare_confusion_variant")
    threshold = st.slider("at threshold", 0.0, 1.0, 0.5, 0.01, key="compare_threshold")
    with friendly_errors():
        preds = _in_cohort(get_bundle(focus))
        at = evaluation.metrics_at_threshold(preds["IS_SUCCESSFUL"], preds[PROBABILITY], threshold)
        chart(
            plots.confusion_matrix_figure(at["confusion"], f"{focus} at {threshold:.2f}"),
            key="compare_confusion",
        )
        st.caption(
            f"accuracy {at['accuracy']:.3f} · precision {at['precision']:.3f} · recall {at['recall']:.3f} · "
            f"F1 {at['f1']:.3f}"
        )
chart(
    plots.calibration_plot({v: t["curves"]["calibration"] for v, t in tests.items() if "curves" in t}),
    key="compare_calibration",
    where=c2,
)

st.subheader("Groups and weak spots (test split)")
gv1, gv2, gv3 = st.columns(3)
group_version = gv1.selectbox(
    "Version", chosen, format_func=lambda v: version_label(cards[v], live), key="compare_groups_version"
)
group_min = gv2.number_input("Minimum group size", 1, 10_000, groups.MIN_GROUP, key="compare_group_min")
slice_min = gv3.number_input("Minimum weak-spot size", 1, 10_000, groups.MIN_SLICE, key="compare_slice_min")
spots: list = []
with friendly_errors():
    g_bundle = get_bundle(group_version)
    g_values, g_preds = groups.test_split_values(g_bundle)
    g_p = g_preds[PROBABILITY].to_numpy()
    g_report, spots = groups.analyse(
        g_values, g_p >= g_bundle.threshold, g_p, g_preds["IS_SUCCESSFUL"].to_numpy(dtype=float),
        min_size=int(group_min), with_weak_spots=True, slice_min=int(slice_min),
    )  # fmt: skip
    st.caption(f"Decision: the model's threshold {g_bundle.threshold:.2f}, on its {len(g_p):,} test rows.")
    group_panel(g_report, "compare_groups", spots)
if spots and user.can("compare"):
    with st.form("compare_save_cohort", clear_on_submit=True):
        st.markdown("**Save a weak spot as a cohort** (it then filters Compare and Explain)")
        which = st.selectbox(
            "Weak spot",
            range(len(spots)),
            format_func=lambda i: spots[i].describe(),
            key="compare_cohort_spot",
        )
        cohort_label = st.text_input("Cohort name", key="compare_cohort_name")
        save = st.form_submit_button("Save cohort")
    if save:
        with friendly_errors():
            groups.save_cohort(cohort_label, spots[which].rule)
            st.session_state["compare_notice"] = f"Saved cohort {' '.join(cohort_label.split())[:80]}."
            st.rerun()
notice = st.session_state.pop("compare_notice", None)
if notice:
    st.success(safe_text(notice))

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
    pair = evaluation.compare_pair(a, _in_cohort(get_bundle(a)), b, _in_cohort(get_bundle(b)))
    mc, boot = pair["mcnemar"], pair["bootstrap"]
    q1, q2, q3 = st.columns(3)
    q1.metric("Accuracy A − B", f"{boot['difference']:+.2%}")
    q2.metric("95% bootstrap interval", f"{boot['ci_low']:+.2%} to {boot['ci_high']:+.2%}")
    q3.metric("McNemar p-value", f"{mc['p_value']:.3g}")
    fixed = cards[a].fixed_evaluation and cards[b].fixed_evaluation
    rows_words = (
        "fixed evaluation rows (both versions scoring the same rows, neither trained on them)"
        if fixed
        else "rows of their shared test split (see 'test figures from': an older refitted version has "
        "trained on them)"
    )
    st.caption(
        f"On the {pair['n']:,} {rows_words}, "
        f"only A is right on {mc['only_a_right']:,} and only B on "
        f"{mc['only_b_right']:,}. A p-value under 0.05 means the difference is unlikely to be chance."
    )
    st.markdown(f"**Applicants they disagree on** ({len(pair['disagreements']):,})")
    st.dataframe(pair["disagreements"], hide_index=True, key="compare_disagree")
