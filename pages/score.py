"""Score: upload applicants, see the validation report, decide, review the results, download, record."""

from __future__ import annotations

import streamlit as st

from core import batch as batches
from core import decisions, plots
from core.errors import FileError
from core.scoring import PROBABILITY
from core.text import safe_text
from pages.common import (
    csv_download,
    download_name,
    friendly_errors,
    get_bundle,
    get_explainer,
    model_page,
    versions,
)

SHOW_ROWS = 2000  # rows drawn in the results table; the download always has every row

user, version = model_page("Score applicants", "score")
limit_mb = st.get_option("server.maxUploadSize")
st.markdown(
    f"Upload a CSV with the Alphabet Soup columns (up to **{limit_mb} MB**): APPLICATION_TYPE, AFFILIATION, "
    "CLASSIFICATION, USE_CASE, ORGANIZATION, STATUS, INCOME_AMT, SPECIAL_CONSIDERATIONS, ASK_AMT; "
    "EIN and NAME are optional. Every row is checked before scoring."
)
left, right = st.columns([3, 1])
upload = left.file_uploader("Applicants CSV", key="score_upload")
if right.button("Try the sample applicants", key="score_sample"):
    st.session_state["score_sample_on"] = True
if upload is not None:
    source_name, data = upload.name, upload.getvalue()
elif st.session_state.get("score_sample_on"):
    from core import config

    source_name, data = config.SAMPLE_APPLICANTS.name, config.SAMPLE_APPLICANTS.read_bytes()
else:
    st.session_state.pop("score", None)  # nothing uploaded: keep nothing
    st.info("Upload a file or try the bundled sample of 300 synthetic applicants.")
    st.stop()

if len(data) > limit_mb * 1024 * 1024:
    st.error(
        f"{safe_text(source_name)} is {len(data) / 2**20:,.0f} MB, over the {limit_mb} MB upload limit. "
        "Split it, or use python -m core score, which streams files of any size."
    )
    st.stop()

scored: batches.ScoredBatch | None = None
with friendly_errors():
    import hashlib

    bundle = get_bundle(version)
    key = (hashlib.sha256(data).hexdigest(), bundle.version)
    cached = st.session_state.get("score")
    if cached and cached[0] == key:
        scored = cached[1]
    else:
        st.session_state.pop("score", None)  # release the previous file's results first
        bar = st.progress(0.0, text="Scoring…")
        approx_rows = max(1, data.count(b"\n"))
        try:
            scored = batches.score_upload(
                bundle,
                data,
                source_name,
                progress=lambda n: bar.progress(min(n / approx_rows, 1.0), text=f"Scored {n:,} rows"),
            )
        except FileError as err:
            bar.empty()
            st.error(f"{safe_text(source_name)}: {safe_text(str(err))}")
            st.stop()
        bar.empty()
        if scored.n:
            with st.spinner("Explaining scores…"):
                batches.add_reasons(scored, get_explainer(version))
        st.session_state["score"] = (key, scored)
del data
if scored is None:
    st.stop()

# -- validation report -------------------------------------------------------------------------
report = scored.report
st.subheader("Validation")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Rows in file", f"{report.n_input:,}")
c2.metric("Accepted", f"{scored.n:,}")
c3.metric("Rejected", f"{report.n_rejected:,}")
c4.metric("With warnings", f"{report.n_warned:,}")
if report.extra_columns:
    st.caption("Ignored extra columns: " + ", ".join(safe_text(c, 60) for c in report.extra_columns))
if report.n_rejected:
    st.warning(f"{report.n_rejected:,} rows were not scored. Reasons:")
    st.dataframe(report.reasons(), hide_index=True, key="score_reasons")
    with st.expander("Rejected rows"):
        st.dataframe(batches.rejects_frame(report), hide_index=True, key="score_rejected")
    csv_download(
        "Download rejected rows (CSV)",
        scored.rejects_csv,
        download_name("rejects", source_name),
        "score_rejects_download",
    )
if len(report.warnings):
    with st.expander(f"Warnings ({len(report.warnings):,})"):
        st.dataframe(report.warnings, hide_index=True, key="score_warnings")
if scored.n == 0:
    st.error("No row could be scored. Fix the rejected rows above and upload the file again.")
    st.stop()

# -- decision ----------------------------------------------------------------------------------
st.subheader("Decision")
mode = st.radio("Select applicants by", ["Threshold", "Budget"], horizontal=True, key="score_mode")
with friendly_errors():
    if mode == "Threshold":
        threshold = st.slider(
            "Recommend when the chance of success is at least",
            0.0,
            1.0,
            float(bundle.threshold),
            0.01,
            key="score_threshold",
        )
        rule = decisions.Rule("threshold", threshold=threshold)
    else:
        b1, b2 = st.columns(2)
        budget = b1.number_input(
            "Total budget ($)", min_value=0.0, value=None, step=1000.0, key="score_budget"
        )
        rank_by = b2.selectbox(
            "Rank applicants by", list(decisions.RANK_BY), format_func=decisions.RANK_BY.get, key="score_rank"
        )
        if budget is None:
            st.info("Enter the total budget to see who it funds.")
            st.stop()
        rule = decisions.Rule("budget", budget=float(budget), rank_by=rank_by)
    selection = batches.decide(scored, rule)
summary = selection.summary(scored.probabilities, scored.asks)
d1, d2, d3, d4 = st.columns(4)
d1.metric("Recommended", f"{summary['selected']:,}")
d2.metric("Not recommended", f"{summary['not_selected']:,}")
d3.metric("Total asked by recommended", f"${summary['total_ask_selected']:,.0f}")
d4.metric("Expected successes", f"{summary['expected_successes']:,.1f}")
if selection.mode == "budget" and selection.cut_probability is not None:
    st.caption(
        f"The budget ran out at a chance of {selection.cut_probability:.1%}; the last applicant funded "
        f"(line {scored.source_lines[selection.last_funded] if selection.last_funded is not None else '–'}) "
        f"has {scored.probabilities[selection.last_funded] if selection.last_funded is not None else 0:.1%}; "
        f"${selection.money_left:,.0f} is left."
        + (
            f" {selection.straddling} applicants share that chance on both sides of the line."
            if selection.straddling
            else ""
        )
    )

# -- results -----------------------------------------------------------------------------------
table = batches.results_frame(scored, selection)
if scored.n > batches.AUTO_REASONS:
    st.caption(f"Reasons are shown for the {batches.TOP_REASONS} most likely applicants of {scored.n:,}.")
st.subheader("Results")
order = st.radio("Order", ["File order", "Most likely first"], horizontal=True, key="score_order")
shown = table.sort_values(PROBABILITY, ascending=False, kind="stable") if order != "File order" else table
if len(table) > SHOW_ROWS:
    st.caption(f"Showing {SHOW_ROWS:,} of {len(table):,} applicants; the download has all.")
st.dataframe(
    shown.head(SHOW_ROWS),
    hide_index=True,
    key="score_results",
    column_config={
        PROBABILITY: st.column_config.NumberColumn("chance of success", format="%.3f"),
        batches.RECOMMENDED: st.column_config.CheckboxColumn("recommended"),
        batches.REASONS: st.column_config.TextColumn("reasons", width="large"),
    },
)
st.plotly_chart(plots.score_histogram(scored.probabilities, selection.threshold), key="score_histogram")

metrics = None
labels = scored.labels()
if labels is not None:
    from core.evaluation import classification_metrics

    known = ~(labels != labels)  # not NaN
    if known.any():
        metrics = classification_metrics(
            labels[known].astype(int), scored.probabilities[known], bundle.threshold
        )
if metrics:
    st.subheader("Accuracy on this batch (it carries IS_SUCCESSFUL)")
    m1, m2, m3 = st.columns(3)
    m1.metric("Accuracy", f"{metrics['accuracy']:.1%}")
    m2.metric("ROC AUC", f"{metrics['roc_auc']:.3f}" if metrics.get("roc_auc") is not None else "n/a")
    m3.metric("Rows with a label", f"{metrics['n']:,}")
    st.plotly_chart(plots.confusion_matrix_figure(metrics["confusion"]), key="score_confusion")

# -- download and record -------------------------------------------------------------------------
csv_download(
    "Download scored applicants (CSV)",
    lambda: batches.results_csv(scored, selection),
    download_name("scored", source_name),
    "score_download",
)
_, _, live = versions()
record_key = (scored.file_sha256, scored.version, rule.key())
recorded = st.session_state.get("score_recorded")
if recorded and recorded[0] == record_key:
    st.success(f"Recorded as batch {recorded[1]}. See History to re-download or override.")
else:
    st.session_state.pop("score_recorded", None)  # belongs to another file, version or rule
    if st.button("Record this batch in History", key="score_record", type="primary"):
        with friendly_errors():
            batch_id = batches.record(scored, selection, user.name, live=scored.version == live)
            st.session_state["score_recorded"] = (record_key, batch_id)
            st.rerun()
