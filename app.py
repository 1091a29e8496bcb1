"""Alphabet Soup Screening: router, shared sidebar and access gate.

Run with ``streamlit run app.py`` (or ``make run``). Pages live in ``pages/`` and only call
``core``.
"""

from __future__ import annotations

import contextlib
import threading
import time

import streamlit as st

from core import auth, config
from pages.common import current_user, metas

st.set_page_config(
    page_title="Alphabet Soup Screening",
    page_icon=str(config.ASSETS_DIR / "icon.png"),
    layout="wide",
)


@st.cache_resource
def preload_tensorflow() -> threading.Thread:
    """Import TensorFlow/Keras in the background once per server, so the first upload does not
    wait for it (the import takes seconds; the pages import it only when a model is needed)."""

    def work() -> None:
        time.sleep(6.0)  # let the first page render first
        with contextlib.suppress(Exception):
            import core.explain
            import core.training  # noqa: F401

    thread = threading.Thread(target=work, name="preload-tensorflow", daemon=True)
    thread.start()
    return thread


preload_tensorflow()


def gate() -> auth.User | None:
    """Login when accounts exist; open on localhost without accounts; refuse otherwise."""
    if st.session_state.get("user"):
        return st.session_state["user"]
    try:
        accounts = auth.load_accounts()
    except (ValueError, OSError):
        st.error("The staff accounts file is unreadable. Recreate it with: python -m core users add NAME")
        st.stop()
    mode = auth.access_mode(st.get_option("server.address"), accounts)
    if mode == "local":
        return auth.User("local", "analyst")
    if mode == "refuse":
        st.error(
            "This server listens beyond this computer but no staff accounts exist, so no data is served. "
            "Add an account with `python -m core users add NAME --role analyst`, then reload."
        )
        st.stop()
    st.title("Alphabet Soup Screening")
    with st.form("login", clear_on_submit=False):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user = auth.authenticate(name, password, accounts)
        if user is None:
            st.error("Wrong user name or password.")
        else:
            st.session_state["user"] = user
            st.rerun()
    st.stop()


def sidebar() -> None:
    all_metas, errors = metas()
    user = current_user()
    with st.sidebar:
        st.markdown(f"**{user.name}** · {user.role}")
        if user.name != "local" and st.button("Log out", key="logout"):
            st.session_state.clear()
            st.rerun()
        if all_metas:
            from core.registry import best_of

            names = list(all_metas)
            # The widget keeps its own key; pages read the plain "variant" key set from it.
            chosen = st.session_state.get("variant_choice")
            default = chosen if chosen in names else best_of(all_metas)
            if chosen not in names:
                st.session_state.pop("variant_choice", None)
            variant = st.selectbox("Model", names, index=names.index(default), key="variant_choice")
            st.session_state["variant"] = variant
            meta = all_metas[variant]
            st.caption(meta.get("label", variant))
            acc = meta.get("metrics", {}).get("test", {}).get("accuracy")
            st.caption(f"Version `{meta['version']}`")
            if acc is not None:
                st.metric("Test accuracy", f"{acc:.1%}")
            if meta.get("training_data", {}).get("synthetic"):
                st.warning("Demo models: trained on synthetic data, not on a real funding history.")
        else:
            st.session_state.pop("variant", None)
            st.info("No trained models yet: use the Train page or `python -m core train`.")
        for message in errors.values():
            st.error(message)


user = gate()
st.session_state["user"] = st.session_state.get("user") or user
sidebar()

pages = [
    st.Page("pages/score.py", title="Score", icon=":material/fact_check:", default=True),
    st.Page("pages/history.py", title="History", icon=":material/history:"),
    st.Page("pages/explain.py", title="Explain", icon=":material/insights:"),
]
if current_user().can("compare"):
    pages.insert(1, st.Page("pages/compare.py", title="Compare", icon=":material/compare:"))
if current_user().can("train"):
    pages.append(st.Page("pages/train.py", title="Train", icon=":material/model_training:"))
st.navigation(pages).run()
