"""Review: the rows of recorded batches that need a human look, assigned, resolved with a reason."""

from __future__ import annotations

import streamlit as st

from core import review, storage
from core.errors import ScreeningError, StorageError
from core.record import resolve_review
from core.text import safe_text
from pages.common import friendly_errors, get_bundle, page_setup, version_label, versions

user = page_setup("override")
st.title("Review queue")
st.caption(
    "Rows that need a human look before the decision stands: "
    + "; ".join(review.RULES.values())
    + ". A resolution that changes the row's decision becomes its override (keep: back to the model's "
    "recommendation); one that confirms it is kept on the item only."
)
try:
    records = storage.list_batches()
    counts = storage.review_counts()
except StorageError as err:
    st.error(safe_text(str(err)))
    st.stop()
if not records:
    st.info("No batch recorded yet. Score a file and record it; its rows can then be queued here.")
    st.stop()
labels = {
    r.id: f"{r.created_at:%Y-%m-%d %H:%M} · {r.file_name} · {r.user} · open {counts.get(r.id, (0, 0))[0]}"
    for r in records
}
batch_id = st.selectbox("Batch", list(labels), format_func=labels.get, key="review_batch")
record = next(r for r in records if r.id == batch_id)

with st.expander("Queue this batch's rows", expanded=batch_id not in counts):
    q1, q2 = st.columns(2)
    band = q1.slider("Band around the decision line (points)", 0, 20, 5, 1, key="review_band")
    cards, _, live = versions()
    others = [v for v in cards if v != record.version]
    challenger = q2.selectbox(
        "Challenger version (rows it decides otherwise are queued)",
        ["(none)", *others],
        format_func=lambda v: v if v == "(none)" else version_label(cards[v], live),
        key="review_challenger",
    )
    if st.button("Build the queue", key="review_build", type="primary"):
        with friendly_errors():
            try:
                scored_by = get_bundle(record.version)
            except ScreeningError:
                scored_by = None  # the version is gone: no first-time or never-seen rules
            rival = get_bundle(challenger) if challenger != "(none)" else None
            result = review.build_queue(batch_id, band / 100, scored_by, rival)
            picked = ", ".join(f"{k}: {v}" for k, v in result.by_rule.items())
            st.session_state["review_notice"] = (
                f"{result.added} rows added to the queue (decision line {result.line:.1%}; {picked})."
            )
            st.rerun()
notice = st.session_state.pop("review_notice", None)
if notice:
    st.success(safe_text(notice))

with friendly_errors():
    table = review.queue_table(batch_id)
    if table.empty:
        st.info("Nothing queued for this batch yet.")
        st.stop()
    open_items = table[table["status"] == "open"]
    c1, c2, c3 = st.columns(3)
    c1.metric("Open", f"{len(open_items):,}")
    c2.metric("Resolved", f"{len(table) - len(open_items):,}")
    c3.metric("Assigned to me (open)", f"{int((open_items['assigned_to'] == user.name).sum()):,}")
    mine = st.checkbox("Only items assigned to me", key="review_mine")
    shown = table[table["assigned_to"] == user.name] if mine else table
    st.dataframe(shown, hide_index=True, key="review_table")
    if open_items.empty:
        st.success("Every queued row of this batch is resolved.")
        st.stop()
    items = open_items["id"].astype(int).tolist()
    describe = {
        int(
            r["id"]
        ): f"line {r['source_line']} · {r.get('EIN', '')} · {str(r.get('NAME', ''))[:40]} · {r['why']}"
        for _, r in open_items.iterrows()
    }
    item = st.selectbox("Open item", items, format_func=describe.get, key="review_item")
    a1, a2 = st.columns([3, 1])
    assignee = a1.text_input("Assign to", value=user.name, key="review_assignee")
    if a2.button("Assign", key="review_assign"):
        storage.assign_review(item, assignee)
        line = int(open_items.loc[open_items["id"] == item, "source_line"].iloc[0])
        st.session_state["review_notice"] = f"Item for line {line} assigned to {assignee.strip()}."
        st.rerun()
    if st.session_state.pop("review_resolved", False):  # a resolution empties the reason (before the widget)
        st.session_state["review_reason"] = ""
    # a refused submit (no reason) keeps the decision and reason the person chose
    with st.form("review_resolve", clear_on_submit=False):
        decision = st.radio(
            "Decision",
            ["approve", "decline", "keep"],
            format_func={"approve": "Approve (fund)", "decline": "Decline (do not fund)",
                         "keep": "Keep the model's recommendation"}.get,
            key="review_decision",
        )  # fmt: skip
        reason = st.text_area("Reason (required)", key="review_reason")
        done = st.form_submit_button("Resolve")
    if done:
        done_item = resolve_review(item, decision, reason, user.name)
        st.session_state["review_notice"] = done_item.sentence()
        st.session_state["review_resolved"] = True
        st.rerun()
