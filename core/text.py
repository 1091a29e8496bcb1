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
_HTML_SPECIAL = frozenset("<>&\"'")


def safe_text(value: object, limit: int | None = None, html_only: bool = False) -> str:
    """``value`` as inert text for Markdown/HTML contexts (control characters and newlines dropped).

    ``html_only``: for documents that are only HTML (the offline reports), where Markdown means
    nothing: only ``< > & " '`` become references, so ids and versions stay searchable as written.
    """
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    special = _HTML_SPECIAL if html_only else _SPECIAL
    return "".join(f"&#{ord(ch)};" if ch in special else ch for ch in text)


def compact_money(amount: float) -> str:
    """'$18.99 B', '$2.50 M', '$12,500': money that fits a metric (the exact value goes in its help)."""
    value = float(amount)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= limit:
            return f"${value / limit:,.2f} {suffix}"
    return f"${value:,.0f}"


def compact_count(count: float) -> str:
    """Counts that fit a metric: '1,234', '12.3 K', '1.20 M'."""
    value = float(count)
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.2f} M"
    if abs(value) >= 1e5:
        return f"{value / 1e3:,.1f} K"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
