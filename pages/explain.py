"""Explain: field-level SHAP attributions, globally and for one applicant, with a what-if editor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import config, explain, plots
from core.reading import read_table
from core.schema import FIELD_LABELS, KNOWN_VALUES, validate
from core.text import safe_text
from pages.common import chart, cohort_picker, friendly_errors, get_bundle, get_explainer, model_page

MAX_ROWS = 500

user, version = model_page("Explain scores", "explain")
st.caption(
    "Each field's effect is its exact Shapley value in probability points: how much it moves this "
    "applicant's chance away from the average applicant's, fairly sharing what fields do together. "
    "Effects add up to the score."
)
sources = {"sample": "Sample applicants"}
scored = (st.session_state.get("score") or (None, None))[1]
if scored is not None:
    sources = {"batch": f"Last scored batch ({safe_text(scored.file_name, 60)})", **sources}
source = st.radio("Applicants", list(sources), format_func=sources.get, horizontal=True, key="explain_source")

attr = None
with friendly_errors():
    bundle = get_bundle(version)
    key = (scored.file_sha256 if source == "batch" else "sample", bundle.version)
    cached = st.session_state.get("explain_cache")
    if cached and cached[0] == key:
        attr = cached[1]
    else:  # validate and explain only when the applicants or the model changed, not on every what-if edit
        if source == "batch":
            rows = scored.features.iloc[:MAX_ROWS]
        else:
            sample = read_table(config.SAMPLE_APPLICANTS.read_bytes())
            rows = validate(sample, known_values=bundle.known_values).accepted.iloc[:MAX_ROWS]
        with st.spinner(f"Explaining {len(rows):,} applicants…"):
            attr = get_explainer(version).explain(rows)
        st.session_state["explain_cache"] = (key, attr)
if attr is None or len(attr.values) == 0:
    st.info("No valid applicants to explain in this file.")
    st.stop()
if len(attr.values) == MAX_ROWS:
    st.caption(f"Showing the first {MAX_ROWS} valid applicants.")

cohort_name, cohort = cohort_picker("explain_cohort", "Cohort (filters the applicants explained)")
if cohort is not None:
    from core.groups import cohort_mask, describe_rule, slice_values

    inside = cohort_mask(slice_values(attr.data, ~bundle.is_seen(attr.data)), cohort)
    st.info(
        safe_text(
            f"Cohort {cohort_name}: {describe_rule(cohort)}. "
            f"{int(inside.sum()):,} of {len(inside):,} applicants."
        )
    )
    if not inside.any():
        st.warning("No applicant of this set is in the cohort.")
        st.stop()
    attr = attr.subset(inside)
importance = explain.get_importance_df(attr)
c1, c2 = st.columns(2)
chart(plots.importance_bar(importance), key="explain_importance", where=c1)
chart(
    plots.attribution_distribution(explain.get_distribution_df(attr), list(importance["field"])),
    key="explain_distribution",
    where=c2,
)

st.subheader("One applicant")
names = attr.data["NAME"].astype(str).str.slice(0, 40) if "NAME" in attr.data else [""] * len(attr.values)
labels = [f"#{i + 1} · {attr.probability[i]:.0%} · {names[i]}" for i in range(len(attr.values))]
pick = st.selectbox("Applicant", range(len(labels)), format_func=lambda i: labels[i], key="explain_pick")
chart(
    plots.waterfall(explain.get_waterfall_df(attr, pick), attr.base_value, float(attr.probability[pick])),
    key="explain_waterfall",
)
reasons = explain.reason_codes(attr, seen_names=bundle.seen_names, records=explain.name_records(bundle))
st.caption("Top reasons: " + safe_text(reasons[pick]))
if attr.probability[pick] < bundle.threshold:
    from core.whatif import CHANGEABLE, DEFAULT_CHANGE, Searcher, decline_reasons

    st.markdown(f"**Below the model's threshold ({bundle.threshold:.0%}): why, and what it would take**")
    one = attr.subset(np.arange(len(attr.values)) == pick)
    why_not = decline_reasons(one, bundle.seen_names, explain.name_records(bundle))[0]
    for reason in why_not or ["No field lowered the chance noticeably."]:
        st.markdown("- " + safe_text(reason))
    changeable = st.multiselect(
        "Fields that may change (the others stay locked)",
        CHANGEABLE,
        default=DEFAULT_CHANGE,
        key="explain_cf_fields",
    )
    max_changes = st.radio(
        "At most this many changes", [1, 2, 3], index=1, horizontal=True, key="explain_cf_max"
    )
    with friendly_errors():
        if changeable:
            found = Searcher(bundle, changeable, max_changes).search(
                attr.data.iloc[[pick]], bundle.threshold
            )[0]
            st.markdown("**What it would take:** " + safe_text(found.text))

st.subheader("Dependence")
field = st.selectbox(
    "Field", list(importance["field"]), format_func=lambda f: FIELD_LABELS.get(f, f), key="explain_field"
)
chart(plots.dependence(explain.get_dependence_df(attr, field), field), key="explain_dependence")

st.subheader("What if?")
st.caption("Change this applicant's fields and see the new chance and effects at once.")
current = attr.data.iloc[pick]
edited: dict[str, str] = {}
cols = st.columns(3)
for i, f in enumerate(attr.fields):
    box = cols[i % 3]
    wkey = f"whatif_{pick}_{f}"
    if f == "ASK_AMT":
        edited[f] = str(
            box.number_input("ASK_AMT", min_value=0.0, value=float(current[f]), step=1000.0, key=wkey)
        )
    elif f == "NAME":
        edited[f] = box.text_input(
            "NAME (blank: a first-time organisation with no name)", value=str(current[f]), key=wkey
        )
    else:
        options = list(dict.fromkeys([*bundle.known_values.get(f, KNOWN_VALUES.get(f, [])), str(current[f])]))
        edited[f] = box.selectbox(f, options, index=options.index(str(current[f])), key=wkey)
with friendly_errors():
    base = {c: str(current[c]) for c in current.index}
    report = validate(pd.DataFrame([{**base, **edited}]), known_values=bundle.known_values)
    if report.n_rejected:
        st.error(report.rejected.iloc[0]["reason"])
    else:
        what_if = get_explainer(version).explain(report.accepted)
        before = float(attr.probability[pick])
        after = float(what_if.probability[0])
        st.metric("Chance of success", f"{after:.1%}", delta=f"{(after - before) * 100:+.1f} points")
        chart(
            plots.waterfall(explain.get_waterfall_df(what_if, 0), what_if.base_value, after),
            key="explain_whatif",
        )
