"""Train: retrain variants on a history CSV (or the default data) with live progress."""

from __future__ import annotations

import streamlit as st

from core import config, jobs, plots
from core.variants import VARIANTS
from core.workflow import load_training_data
from pages.common import friendly_errors, models_dir, require

require("train")
st.title("Train model variants")
st.markdown(
    "Upload a history CSV with the applicant columns **and** `IS_SUCCESSFUL`, or use the default data. "
    "Training runs in the background: scoring keeps using the current models until each new one is saved."
)
default_label = (
    f"Default: {config.train_csv()}" if config.train_csv() else "Default: synthetic demo data (8,000 rows)"
)
upload = st.file_uploader("History CSV (optional)", key="train_upload")
chosen = st.multiselect(
    "Variants",
    list(VARIANTS),
    default=list(VARIANTS),
    format_func=lambda v: f"{v} — {VARIANTS[v].label}",
    key="train_variants",
)
seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="train_seed")
st.caption(upload.name if upload is not None else default_label)

if st.button("Train", type="primary", key="train_start", disabled=jobs.is_running() or not chosen):
    with friendly_errors():
        if upload is not None:
            data = load_training_data(upload.getvalue(), name=upload.name)
        else:
            data = load_training_data(config.train_csv())
        if data.report.n_rejected:
            st.warning(f"{data.report.n_rejected:,} invalid rows are left out of training.")
        max_epochs = st.session_state.get("train_max_epochs")  # tests shorten training
        jobs.start_training(data, list(chosen), int(seed), models_dir(), max_epochs=max_epochs)


@st.fragment(run_every=1.0)
def progress_panel() -> None:
    job = jobs.current_job()
    if job is None:
        return
    snap = job.snapshot()
    st.subheader(f"Training on {job.source}")
    for v in snap["variants"]:
        epoch, total = snap["epochs"].get(v, (0, 1))
        done = v in snap["finished"]
        label = f"{v}: " + ("saved" if done else f"epoch {epoch}/{total}" if epoch else "waiting")
        st.progress(1.0 if done else min(epoch / max(total, 1), 1.0), text=label)
    if snap["curves"]:
        st.plotly_chart(plots.training_curves(snap["curves"], "loss"), key="train_live_loss")
    if snap["status"] == "done":
        st.success(f"Trained {', '.join(snap['variants'])} in {snap['elapsed']:.0f} s. See Compare.")
    elif snap["status"] == "failed":
        st.error(f"Training failed ({snap['error']}). The previous models keep serving.")


progress_panel()
