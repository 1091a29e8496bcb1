"""History: every recorded batch, re-downloadable as first produced, with staff overrides."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import storage
from core.scoring import to_csv_bytes
from pages.common import csv_download, current_user, friendly_errors, require

require("history")
st.title("Scored batches")
with friendly_errors():
    records = storage.list_batches()
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
            "model": f"{r.variant} ({r.version})",
            "rule": f"threshold {r.threshold:.2f}" if r.mode == "threshold" else f"budget ${r.budget:,.0f}",
            "id": r.id,
        }
        for r in records
    ]
)
st.dataframe(listing, hide_index=True, key="history_table")
ids = [r.id for r in records]
labels = {r.id: f"{r.created_at:%Y-%m-%d %H:%M} · {r.file_name} · {r.user}" for r in records}
batch_id = st.selectbox("Batch", ids, format_func=labels.get, key="history_batch")
record = next(r for r in records if r.id == batch_id)
st.caption(f"sha256 of the uploaded file: `{record.file_sha256}`")

with friendly_errors():
    results, rejects = storage.batch_files(batch_id)
    d1, d2, d3 = st.columns(3)
    csv_download("Results as first produced", results, f"scored_{record.file_name}", "history_download", d1)
    if record.rejected:
        csv_download("Rejected rows", rejects, f"rejected_{record.file_name}", "history_rejects", d2)
    current = storage.results_with_overrides(batch_id)
    csv_download(
        "Results with overrides",
        to_csv_bytes(current),
        f"scored_overridden_{record.file_name}",
        "history_download_overrides",
        d3,
    )
    st.dataframe(current, hide_index=True, key="history_rows")

if current_user().can("override"):
    st.subheader("Override a recommendation")
    with st.form("override_form", clear_on_submit=True):
        row = st.number_input(
            "Row (first column above)",
            min_value=1,
            max_value=max(len(current), 1),
            step=1,
            key="override_row",
        )
        decision = st.radio("Decision", ["Fund", "Do not fund"], horizontal=True, key="override_decision")
        reason = st.text_area("Reason (required)", key="override_reason")
        submitted = st.form_submit_button("Save override")
    if submitted:
        with friendly_errors():
            storage.add_override(
                batch_id, int(row), 1 if decision == "Fund" else 0, reason, current_user().name
            )
            st.success(f"Override saved for row {int(row)}.")
            st.rerun()
