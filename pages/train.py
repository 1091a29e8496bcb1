"""Train: new model versions from a history file. A new version is a candidate, never live by itself."""

from __future__ import annotations

import streamlit as st

from core import config, jobs, plots
from core.datasets import SYNTHETIC_ROWS, load_training_data
from core.text import safe_text
from core.variants import VARIANTS
from pages.common import chart, friendly_errors, models_dir, page_setup

page_setup("train")
st.title("Train model variants")
st.markdown(
    "Each variant trained here becomes a new **candidate version**. Nothing changes for staff until an "
    "analyst compares a candidate with the live model and promotes it on the Models page. Training runs in "
    "the background; scoring keeps using the live model meanwhile."
)
sources = {"upload": "Upload a history CSV (with IS_SUCCESSFUL)"}
configured = config.train_csv()
if configured:
    sources["configured"] = f"The configured history ({configured.name}, set by SCREENING_TRAIN_CSV)"
sources["synthetic"] = f"Synthetic demo data ({SYNTHETIC_ROWS:,} invented rows; not for real decisions)"
choice = st.radio(
    "Training data",
    list(sources),
    format_func=lambda k: safe_text(sources[k]),
    index=None,
    key="train_source",
)
upload = st.file_uploader("History CSV", key="train_upload") if choice == "upload" else None
if choice == "synthetic":
    st.warning(
        "Models trained on synthetic data say nothing about real applicants; they are labelled as such."
    )
chosen = st.multiselect(
    "Variants",
    list(VARIANTS),
    default=list(VARIANTS),
    format_func=lambda v: f"{v} — {VARIANTS[v].label}",
    key="train_variants",
)
seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="train_seed")
ready = choice is not None and bool(chosen) and (choice != "upload" or upload is not None)
if st.button("Train", type="primary", key="train_start", disabled=jobs.is_running() or not ready):
    with friendly_errors():
        if choice == "upload":
            data = load_training_data(upload.getvalue(), name=upload.name)
        elif choice == "configured":
            data = load_training_data(configured)
        else:
            data = load_training_data(None)
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
    st.subheader("Training on " + safe_text(job.source, 80))
    for v in snap["variants"]:
        epoch, total = snap["epochs"].get(v, (0, 1))
        done = v in snap["finished"]
        label = f"{v}: " + ("saved" if done else f"epoch {epoch}/{total}" if epoch else "waiting")
        st.progress(1.0 if done else min(epoch / max(total, 1), 1.0), text=label)
    if snap["curves"]:
        chart(plots.training_curves(snap["curves"], "loss"), key="train_live_loss")
    if snap["status"] == "done":
        st.success(
            f"Trained {len(snap['versions'])} candidate versions in {snap['elapsed']:.0f} s: "
            + ", ".join(snap["versions"].values())
            + ". Compare them with the live model and promote one on the Models page."
        )
        st.page_link(
            "pages/models.py", label="Open Models to compare and promote", icon=":material/verified:"
        )
    elif snap["status"] == "failed":
        st.error(f"Training failed ({safe_text(snap['error'])}). The live model keeps serving.")


progress_panel()
