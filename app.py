"""Alphabet Soup Screening dashboard (minimal view until the full dashboard lands)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config
from core.evaluation import comparison_table
from core.registry import list_metas

st.set_page_config(page_title="Alphabet Soup Screening", layout="wide")
st.title("Alphabet Soup Screening")
metas, errors = list_metas(config.models_dir())
if not metas:
    st.warning("No trained models yet. Run `make run` or `python -m core train` to train them.")
else:
    st.subheader("Trained model variants")
    table = comparison_table(metas)
    st.dataframe(table, hide_index=True, key="variants_table")
    synthetic = any(m["training_data"].get("synthetic") for m in metas.values())
    if synthetic:
        st.info("These models were trained on the synthetic demo data, not on a real history.")
for message in errors.values():
    st.error(message)
st.caption(pd.Timestamp.now().strftime("Loaded %Y-%m-%d %H:%M"))
