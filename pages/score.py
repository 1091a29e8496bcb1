"""Score: upload applicants, see the validation report, score, decide, download, record."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from core import config, decisions, plots, storage
from core.explain import reason_codes
from core.schema import FileError
from core.scoring import PREDICTED, PROBABILITY, ScoreResult, score_source, to_csv_bytes
from pages.common import csv_download, current_user, friendly_errors, get_bundle, get_explainer, model_page

AUTO_REASONS = 1000  # explain every row of batches up to this size...
TOP_REASONS = 100  # ...and the most likely rows of larger ones (a button explains the rest)
SHOW_ROWS = 2000  # rows drawn in the results table; the download always has every row

variant = model_page("Score applicants", "score")

limit_mb = st.get_option("server.maxUploadSize")
st.markdown(
    f"Upload a CSV with the Alphabet Soup columns (up to **{limit_mb} MB**): `APPLICATION_TYPE, AFFILIATION, "
    "CLASSIFICATION, USE_CASE, ORGANIZATION, STATUS, INCOME_AMT, SPECIAL_CONSIDERATIONS, ASK_AMT`; "
    "`EIN` and `NAME` are optional. Every row is checked before scoring."
)
left, right = st.columns([3, 1])
upload = left.file_uploader("Applicants CSV", key="score_upload")
if right.button("Try the sample applicants", key="score_sample"):
    st.session_state["score_sample_on"] = True
if upload is not None:
    source_name, data = upload.name, upload.getvalue()
elif st.session_state.get("score_sample_on"):
    source_name, data = config.SAMPLE_APPLICANTS.name, config.SAMPLE_APPLICANTS.read_bytes()
else:
    st.info("Upload a file or try the bundled sample of 300 synthetic applicants.")
    st.stop()

if len(data) > limit_mb * 1024 * 1024:
    st.error(
        f"{source_name} is {len(data) / 2**20:,.0f} MB, over the {limit_mb} MB upload limit. "
        "Split it, or use `python -m core score`, which streams files of any size."
    )
    st.stop()
digest = hashlib.sha256(data).hexdigest()
result: ScoreResult | None = None
with friendly_errors():
    bundle = get_bundle(variant)
    key = (digest, bundle.version)
    cached = st.session_state.get("score_result")
    if cached and cached[0] == key:
        result = cached[1]
    else:
        bar = st.progress(0.0, text="Scoring…")
        approx_rows = max(1, data.count(b"\n"))
        try:
            result = score_source(
                bundle,
                data,
                progress=lambda n: bar.progress(min(n / approx_rows, 1.0), text=f"Scored {n:,} rows"),
            )
        except FileError as err:
            bar.empty()
            st.error(f"{source_name}: {err}")
            st.session_state.pop("score_result", None)
            st.stop()
        bar.empty()
        st.session_state["score_result"] = (key, result)
        st.session_state["score_batch"] = {"name": source_name, "data": data, "reasons": None}
if result is None:
    st.stop()

# -- validation report -------------------------------------------------------------------
report = result.report
st.subheader("Validation")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Rows in file", f"{report.n_input:,}")
c2.metric("Accepted", f"{report.n_accepted:,}")
c3.metric("Rejected", f"{report.n_rejected:,}")
c4.metric("With warnings", f"{report.n_warned:,}")
if report.extra_columns:
    st.caption("Ignored extra columns: " + ", ".join(report.extra_columns))
if report.n_rejected:
    st.warning(f"{report.n_rejected:,} rows were not scored. Reasons:")
    st.dataframe(report.reasons(), hide_index=True, key="score_reasons")
    with st.expander("Rejected rows"):
        st.dataframe(report.rejected, hide_index=True, key="score_rejected")
    csv_download(
        "Download rejected rows (CSV)",
        to_csv_bytes(report.rejected),
        f"rejected_{source_name}",
        "score_rejects_download",
    )
if len(report.warnings):
    with st.expander(f"Warnings ({len(report.warnings):,})"):
        st.dataframe(report.warnings, hide_index=True, key="score_warnings")
if report.n_accepted == 0:
    st.error("No row could be scored. Fix the rejected rows above and upload the file again.")
    st.stop()

# -- decisions ---------------------------------------------------------------------------
st.subheader("Decision")
scored = result.scored
mode = st.radio("Select applicants by", ["Threshold", "Budget"], horizontal=True, key="score_mode")
if mode == "Threshold":
    threshold = st.slider(
        "Recommend when the chance of success is at least",
        0.0,
        1.0,
        float(bundle.threshold),
        0.01,
        key="score_threshold",
    )
    selection = decisions.by_threshold(scored, threshold)
else:
    asks = decisions.ask_amounts(scored)
    default_budget = float(np.round(asks.sum() / 2, -3)) or 1000.0
    b1, b2 = st.columns(2)
    budget = b1.number_input(
        "Total budget ($)", min_value=0.0, value=default_budget, step=1000.0, key="score_budget"
    )
    rank_by = b2.selectbox(
        "Rank applicants by", list(decisions.RANK_BY), format_func=decisions.RANK_BY.get, key="score_rank"
    )
    selection = decisions.by_budget(scored, budget, rank_by)
summary = selection.summary(scored)
d1, d2, d3, d4 = st.columns(4)
d1.metric("Recommended", f"{summary['selected']:,}")
d2.metric("Not recommended", f"{summary['not_selected']:,}")
d3.metric("Total asked by recommended", f"${summary['total_ask_selected']:,.0f}")
d4.metric("Expected successes", f"{summary['expected_successes']:,.1f}")

# -- reasons -----------------------------------------------------------------------------
batch = st.session_state["score_batch"]
reasons = batch.get("reasons")
order = np.argsort(-scored[PROBABILITY].to_numpy(), kind="stable")
if reasons is None:
    reasons = np.full(len(scored), "", dtype=object)
    todo = order if len(scored) <= AUTO_REASONS else order[:TOP_REASONS]
    with friendly_errors(), st.spinner("Explaining scores…"):
        attr = get_explainer(variant).explain(report.accepted.iloc[todo])
        reasons[todo] = reason_codes(attr)
    batch["reasons"] = reasons
if len(scored) > AUTO_REASONS and (reasons == "").any():
    st.caption(f"Reasons are shown for the {TOP_REASONS} most likely applicants of {len(scored):,}.")
    if st.button(f"Explain all {len(scored):,} rows", key="score_explain_all"):
        with friendly_errors(), st.spinner("Explaining every row…"):
            batch["reasons"] = np.array(
                reason_codes(get_explainer(variant).explain(report.accepted)), dtype=object
            )
            st.rerun()

table = decisions.with_decisions(scored.assign(reasons=reasons), selection)
st.subheader("Results")
st.caption("Most likely to succeed first. `selected` is the recommendation under the decision above.")
if len(table) > SHOW_ROWS:
    st.caption(f"Showing the {SHOW_ROWS:,} most likely of {len(table):,} applicants; the download has all.")
st.dataframe(
    table.head(SHOW_ROWS),
    hide_index=True,
    key="score_results",
    column_config={
        PROBABILITY: st.column_config.ProgressColumn(
            "chance of success", min_value=0.0, max_value=1.0, format="%.2f"
        ),
        "reasons": st.column_config.TextColumn("top reasons", width="large"),
    },
)
st.plotly_chart(
    plots.score_histogram(scored[PROBABILITY].to_numpy(), selection.threshold), key="score_histogram"
)

metrics = result.batch_metrics()
if metrics:
    st.subheader("Accuracy on this batch (it carries IS_SUCCESSFUL)")
    m1, m2, m3 = st.columns(3)
    m1.metric("Accuracy", f"{metrics['accuracy']:.1%}")
    m2.metric("ROC AUC", f"{metrics['roc_auc']:.3f}" if metrics.get("roc_auc") is not None else "n/a")
    m3.metric("Rows with a label", f"{metrics['n']:,}")
    st.plotly_chart(plots.confusion_matrix_figure(metrics["confusion"]), key="score_confusion")

# -- download and record -----------------------------------------------------------------
download = table.drop(columns=[PREDICTED]).rename(columns={"selected": "recommended"})
results_csv = to_csv_bytes(download)
csv_download("Download scored applicants (CSV)", results_csv, f"scored_{source_name}", "score_download")
if st.button("Record this batch in History", key="score_record", type="primary"):
    with friendly_errors():
        batch_id = storage.record_batch(
            user=current_user().name,
            file_name=source_name,
            file_bytes=batch["data"],
            counts=report.summary(),
            variant=variant,
            version=bundle.version,
            mode=selection.mode,
            threshold=selection.threshold,
            budget=selection.budget,
            selected=summary["selected"],
            results_csv=results_csv,
            rejects_csv=to_csv_bytes(report.rejected),
        )
        st.session_state["score_recorded"] = batch_id
if st.session_state.get("score_recorded"):
    st.success(
        f"Recorded as batch {st.session_state['score_recorded']}. See History to re-download or override."
    )
