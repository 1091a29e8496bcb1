"""Models: every version, its model card, a candidate beside the live model, promotion and rollback."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import evaluation, registry
from core.report import card_html
from core.text import safe_text
from pages.common import friendly_errors, get_bundle, models_dir, page_setup, section, version_label, versions

user = page_setup("compare")
st.title("Model versions")
cards, errors, live = versions()
if not cards:
    st.warning("No trained models yet. Train them on the Train page.")
    st.stop()
st.caption(
    "Every training run adds an immutable version. Staff always score with the live version; it changes only "
    "when an analyst promotes another one with a reason."
)
listing = pd.DataFrame(
    [
        {
            "version": c.version,
            "live": "LIVE" if c.version == live else "",
            "variant": c.variant,
            "created": c.created[:19].replace("T", " "),
            "training data": ("synthetic: " if c.synthetic else "real: ") + c.training_data.source,
            "rows": c.training_data.rows,
            "test accuracy": c.test_accuracy,
            "ROC AUC": c.test.get("roc_auc"),
            "first-time accuracy": c.first_time.get("accuracy"),
            "test figures from": c.evaluation_short(),
        }
        for c in cards.values()
    ]
)
st.dataframe(listing, hide_index=True, key="models_table")

with section("Live model history", key="models_events_open") as box:
    if box.open:
        with friendly_errors():
            events = registry.registry_events(models_dir())
            st.dataframe(
                pd.DataFrame([e.__dict__ for e in reversed(events)]), hide_index=True, key="models_events"
            )

options = list(cards)
candidate = st.selectbox(
    "Version",
    options,
    index=next((i for i, v in enumerate(options) if v != live), 0),
    format_func=lambda v: version_label(cards[v], live),
    key="models_candidate",
)
card = cards[candidate]
left, right = st.columns([3, 2])
with left:
    st.subheader("Model card")
    st.markdown(safe_text(card.intended_use))
    st.markdown("**What it is:** " + safe_text(card.description))
    st.markdown(
        "**Training data:** "
        + safe_text(
            f"{card.training_data.source} ({'synthetic' if card.synthetic else 'real'}), "
            f"{card.training_data.rows:,} rows, sha256 {card.training_data.sha256[:16]}…"
        )
    )
    st.markdown("**Limitations**")
    for text in card.limitations():
        st.markdown("- " + safe_text(text))
with right:
    st.download_button(
        "Download the model card (Markdown)",
        card.to_markdown().encode(),
        file_name=f"model_card_{card.version}.md",
        mime="text/markdown",
        key="models_card_download",
    )
    st.download_button(
        "Download the model card (HTML, opens offline)",
        lambda: card_html(card).encode("utf-8"),
        file_name=f"model_card_{card.version}.html",
        mime="text/html",
        key="models_card_html_download",
        on_click="ignore",
    )

if live in cards and candidate != live:
    st.subheader("Beside the live model")
    with friendly_errors():
        results = evaluation.head_to_head(get_bundle(candidate), get_bundle(live))
        for res in results:
            st.markdown(
                safe_text(f"On {res['split']} ({res['n']:,} rows), both versions scoring the same rows:")
            )
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Candidate accuracy", f"{res['candidate']['accuracy']:.1%}")
            m2.metric("Live accuracy", f"{res['live']['accuracy']:.1%}")
            boot = res["bootstrap"]
            m3.metric("Difference, 95% interval", f"{boot['ci_low']:+.1%} to {boot['ci_high']:+.1%}")
            m4.metric("McNemar p-value", f"{res['mcnemar']['p_value']:.3g}")
            st.caption(f"They disagree on {len(res['disagreements']):,} applicants.")
            st.dataframe(res["disagreements"].head(500), hide_index=True, key="models_disagree")

if user.can("promote"):
    st.subheader("Promote or roll back")
    with st.form("promote_form", clear_on_submit=True):
        reason = st.text_area("Reason (required, recorded with your name)", key="models_reason")
        p1, p2 = st.columns(2)
        promote = p1.form_submit_button(f"Promote {candidate}", disabled=candidate == live)
        rollback = p2.form_submit_button("Roll back to the previous live version")
    if promote or rollback:
        with friendly_errors():
            if promote:
                event = registry.promote(models_dir(), candidate, user.name, reason)
            else:
                event = registry.rollback(models_dir(), user.name, reason)
            st.session_state["models_notice"] = f"Live model is now {event.version} (was {event.previous})."
            st.rerun()
    notice = st.session_state.pop("models_notice", None)
    if notice:
        st.success(safe_text(notice))
for where, message in errors.items():
    st.error(safe_text(f"{where}: {message}"))
