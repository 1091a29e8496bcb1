"""User text is text: one helper for every place that renders Markdown or HTML.

Anything that comes from a file or a person (headers, values, NAME, file names, reasons) goes
through :func:`safe_text` before it reaches a Streamlit message, label or caption, or a Plotly
label or hover. Each Markdown/HTML special character becomes a numeric character reference,
which CommonMark and Plotly both show as the literal character and never as markup: no link,
image, HTML tag or formatting can come from user text. Plain-text widgets (tables, select
options) show values as they are and need no escaping.
"""

from __future__ import annotations

_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~$:&\"'=^%@/")


def safe_text(value: object, limit: int | None = None) -> str:
    """``value`` as inert text for Markdown/HTML contexts (control characters and newlines dropped)."""
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return "".join(f"&#{ord(ch)};" if ch in _SPECIAL else ch for ch in text)
