"""History: every recorded batch, re-downloadable as first produced, with staff overrides by applicant."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import batch as batches
from core import plots, storage
from core import record as record_actions
from core.errors import ScreeningError, StorageError
from core.monitoring import Check, Estimate
from core.scoring import to_csv_bytes
from core.text import safe_text
from pages.common import (
    chart,
    csv_download,
    data_check_panel,
    download_name,
    friendly_errors,
    get_bundle,
    group_panel,
    html_download,
    page_setup,
    section,
)

user = page_setup("history")
st.title("Scored batches")
try:
    records = storage.list_batches()
    trend = batches.monitoring_history(records)
    queued = storage.review_counts()
except StorageError as err:
    st.error(safe_text(str(err)))
    st.stop()
if not records:
    st.info("No batch recorded yet. Score a file and press 'Record this batch in History'.")
    st.stop()
listing = pd.DataFrame(
    [
        {
            "recorded": r.created_at.strftime("%Y-%m-%d %H:%M"),
            "by": r.user,
            "file": r.file_name,
            "rows": r.rows,
            "accepted": r.accepted,
            "rejected": r.rejected,
            "recommended": r.selected,
            "model version": r.version,
            "live model": {1: "yes", 0: "no"}.get(r.live, "unknown"),
            "rule": r.rule_text(),
            "id": r.id,
        }
        for r in records
    ]
)
by_id = trend.set_index("batch")
listing["data checks"] = listing["id"].map(by_id["data_checks"]).fillna("not checked")
listing["estimated accuracy"] = listing["id"].map(by_id["estimated_accuracy"])
listing["realized accuracy"] = listing["id"].map(by_id["realized_accuracy"])
listing["review open"] = listing["id"].map(lambda i: queued.get(i, (0, 0))[0])
listing["review resolved"] = listing["id"].map(lambda i: queued.get(i, (0, 0))[1])
st.dataframe(
    listing,
    hide_index=True,
    key="history_table",
    column_config={
        "rule": st.column_config.TextColumn(width="medium"),
        "estimated accuracy": st.column_config.NumberColumn(format="%.3f"),
        "realized accuracy": st.column_config.NumberColumn(format="%.3f"),
    },
)
failed = int((listing["data checks"] == "Fail").sum())
if failed:
    st.warning(f"{failed} batch(es) failed their data checks (column 'data checks' says Fail).")
with section(
    "Accuracy over time: estimated at scoring, realized when outcomes arrived", key="history_trend_open"
) as box:
    if box.open and len(trend):
        chart(
            plots.monitoring_trend(trend),
            key="history_trend",
            summary=plots.monitoring_trend_summary(trend),
        )
        st.dataframe(trend, hide_index=True, key="history_trend_table")
    elif box.open:
        st.info("No recorded batch has an accuracy estimate yet.")
ids = [r.id for r in records]
labels = {r.id: f"{r.created_at:%Y-%m-%d %H:%M} · {r.file_name} · {r.user}" for r in records}
batch_id = st.selectbox("Batch", ids, format_func=labels.get, key="history_batch")
record = next(r for r in records if r.id == batch_id)
st.caption(f"Batch {record.id} · sha256 of the uploaded file: {record.file_sha256}")

current = None
with friendly_errors():
    results, rejects = storage.batch_files(batch_id)
    d1, d2, d3 = st.columns(3)
    csv_download(
        "Results as first produced",
        results,
        download_name("scored", record.file_name),
        "history_download",
        d1,
    )
    if record.rejected:
        csv_download(
            "Rejected rows", rejects, download_name("rejects", record.file_name), "history_rejects", d2
        )
    from core.report import batch_report

    html_download(
        "Batch report (HTML, opens offline)",
        lambda: batch_report(batch_id)[0].encode("utf-8"),
        download_name("report", record.file_name, "html"),
        "history_report",
        d3,
    )
    current = storage.results_with_overrides(batch_id)
    csv_download(
        "Results with overrides",
        to_csv_bytes(current),
        download_name("scored_overridden", record.file_name),
        "history_download_overrides",
        d3,
    )
if current is None:
    st.stop()

# -- monitoring of the chosen batch ------------------------------------------------------------------
stored = {} if record.monitoring_damaged else record.monitoring_data()
with section("Data checks and accuracy estimate at scoring time", key="history_checks_open") as box:
    if box.open:
        if record.monitoring_damaged:
            st.error(
                "The data checks and estimate stored with this batch are damaged (not valid JSON). "
                "They were kept as they are; ask an administrator to restore a backup."
            )
        elif stored.get("check"):
            data_check_panel(Check.from_dict(stored["check"]), "history_checks")
        else:
            st.info("This batch was recorded before data checks existed.")
        if stored.get("estimate"):
            st.markdown(safe_text(Estimate.from_dict(stored["estimate"]).sentence()))
arrived = storage.latest_outcomes().get(batch_id)
st.subheader("Outcomes")
outcomes_notice = st.session_state.pop("outcomes_notice", None)
if outcomes_notice:
    st.success(safe_text(outcomes_notice))
if arrived:
    real = arrived.summary
    o1, o2, o3, o4 = st.columns(4)
    o1.metric("Realized accuracy", f"{real['accuracy']:.1%}")
    o2.metric(
        "Estimated at scoring",
        f"{real['estimated_accuracy']:.1%}" if real.get("estimated_accuracy") is not None else "–",
    )
    o3.metric(
        "Recommended who succeeded",
        "–" if real.get("precision_recommended") is None else f"{real['precision_recommended']:.1%}",
    )
    o4.metric("ROC AUC", "–" if real.get("roc_auc") is None else f"{real['roc_auc']:.3f}")
    st.caption(
        f"{real['n_matched']:,} applicants matched on {safe_text(arrived.joined_on)} from "
        f"{safe_text(arrived.file_name)} (attached by {safe_text(arrived.user)}, "
        f"{arrived.created_at:%Y-%m-%d %H:%M}). Calibration gap (mean chance minus success rate): "
        f"{real['calibration_gap']:+.1%}. Accuracy is that of the recorded recommendation, before overrides."
    )
    if real.get("calibration"):
        st.dataframe(pd.DataFrame(real["calibration"]), hide_index=True, key="history_calibration")
else:
    st.caption("No outcomes attached yet.")
with friendly_errors():
    outcome_sets = storage.list_outcomes(batch_id)
    if len(outcome_sets) > 1 or any(o.replaced for o in outcome_sets):
        st.caption("Every outcomes set attached to this batch; replaced sets are kept.")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "attached": f"{o.created_at:%Y-%m-%d %H:%M}",
                        "by": o.user,
                        "file": o.file_name,
                        "matched": o.summary.get("n_matched"),
                        "realized accuracy": o.summary.get("accuracy"),
                        "status": f"replaced {o.replaced_at:%Y-%m-%d %H:%M} by {o.replaced_by}"
                        if o.replaced
                        else "current",
                    }
                    for o in outcome_sets
                ]
            ),
            hide_index=True,
            key="history_outcome_sets",
        )
if user.can("override"):
    outcome_file = st.file_uploader(
        "Outcomes file (EIN or source_line, and IS_SUCCESSFUL 0/1)", key="history_outcomes_file"
    )
    replace = False
    if arrived:
        replace = st.checkbox(
            "Replace the outcomes attached now (they are kept, marked replaced)",
            key="history_outcomes_replace",
        )
    if st.button("Attach outcomes", key="history_outcomes_attach", disabled=outcome_file is None):
        with friendly_errors():
            result = batches.attach_outcomes(
                batch_id, outcome_file.getvalue(), outcome_file.name, user.name, replace=replace
            )
            st.session_state["outcomes_notice"] = (
                f"Outcomes attached: {result.realized.n_matched:,} applicants matched on {result.joined_on}; "
                f"realized accuracy {result.realized.accuracy:.1%} "
                f"(estimated {result.estimate.accuracy:.1%})."
            )
            st.rerun()
with section("Groups: who the decision after overrides selects", key="history_groups_open") as box:
    if box.open:
        h_min = st.number_input("Minimum group size", 1, 10_000, 30, key="history_group_min")
        with friendly_errors():
            try:
                scored_by = get_bundle(record.version)
            except ScreeningError:
                scored_by = None
                st.caption("The model version that scored this batch is gone: no first-time groups.")
            h_report, h_spots = batches.recorded_groups(batch_id, scored_by, int(h_min))
            group_panel(h_report, "history_groups", h_spots)
overridden = int((current["override"] != "none").sum())
st.caption(f"{overridden:,} applicants overridden by staff. final_decision is the decision after overrides.")
st.dataframe(current, hide_index=True, key="history_rows")

notice = st.session_state.pop("override_notice", None)
if notice:
    st.success(safe_text(notice))
if user.can("override"):
    st.subheader("Override a recommendation")
    key_col = "source_line" if "source_line" in current else "row"
    choices = current[key_col].astype(int).tolist()
    names = dict(zip(choices, current.get("NAME", pd.Series([""] * len(current))).astype(str)))
    eins = dict(zip(choices, current.get("EIN", pd.Series([""] * len(current))).astype(str)))
    if st.session_state.pop(
        "override_saved", False
    ):  # a saved override empties the reason (before the widget)
        st.session_state["override_reason"] = ""
    # a refused submit keeps what the person chose: applicant, decision and reason stay as they were
    with st.form("override_form", clear_on_submit=False):
        row = st.selectbox(
            "Applicant (line in the file · EIN · NAME)",
            choices,
            format_func=lambda n: f"line {n} · {eins.get(n, '')} · {names.get(n, '')[:50]}",
            key="override_row",
        )
        decision = st.radio(
            "Decision",
            ["Approve (fund)", "Decline (do not fund)", "Undo the override"],
            key="override_decision",
        )
        reason = st.text_area("Reason (required)", key="override_reason")
        submitted = st.form_submit_button("Save override")
    if submitted:
        with friendly_errors():
            word = {"Approve (fund)": "approve", "Decline (do not fund)": "decline"}.get(decision, "undo")
            done = record_actions.override(batch_id, int(row), word, reason, user.name)
            st.session_state["override_notice"] = done.sentence()
            st.session_state["override_saved"] = True
            st.rerun()
