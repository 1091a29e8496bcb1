"""Alphabet Soup Screening: the router.

Run with ``streamlit run app.py`` (or ``make run``). It always goes through ``st.navigation``:
with only the sign-in page while nobody is signed in, with the pages the user's role allows
after. Each page script also checks the sign-in itself (``pages.common.page_setup``), so a page
reached any other way shows nothing but the sign-in form.
"""

from __future__ import annotations

import streamlit as st

from core import config
from pages.common import show_login_only, signed_in_user, warm_up

st.set_page_config(
    page_title="Alphabet Soup Screening",
    page_icon=str(config.ASSETS_DIR / "icon.png"),
    layout="wide",
)

warm_up()  # once per server: load the live model in the background while the first page renders
user = signed_in_user()
if user is None:
    show_login_only()
else:
    pages = [
        st.Page("pages/score.py", title="Score", icon=":material/fact_check:", default=True),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/review.py", title="Review", icon=":material/rule:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/insights:"),
    ]
    if user.can("compare"):
        pages.insert(1, st.Page("pages/compare.py", title="Compare", icon=":material/compare:"))
        pages.insert(2, st.Page("pages/models.py", title="Models", icon=":material/verified:"))
    if user.can("train"):
        pages.append(st.Page("pages/train.py", title="Train", icon=":material/model_training:"))
    try:
        st.navigation(pages).run()
    finally:
        # what the page run freed (the tables and figures it built) goes back to the system now, not
        # at glibc's discretion: a server with a few large uploads otherwise stays at its peak
        from core.batch import release_memory

        release_memory(collect=False)
