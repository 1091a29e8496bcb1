"""What every CSV this project writes shares: the chance columns and formula-safe cells.

Text cells that a spreadsheet would execute (starting with = + - @, tab or CR) are prefixed with
``'`` in every CSV written. Scoring itself is ``core.batch`` (the one workflow the page and the
CLI share).
"""

from __future__ import annotations

import csv

import pandas as pd

PROBABILITY = "success_probability"
PREDICTED = "predicted_success"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells starting with = + - @ (or tab/CR) with ' so spreadsheets show, not run, them."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            text = out[col].astype("string")
            risky = text.str.startswith(_FORMULA_START).fillna(False).astype(bool)
            if risky.any():
                out[col] = text.mask(risky, "'" + text).astype(object)
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """A formula-safe CSV as bytes (for downloads)."""
    return neutralise(frame).to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode("utf-8")
