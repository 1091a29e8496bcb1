"""User text is text: Markdown/HTML payloads in headers, values, NAME and file names never become
links, images, tags or formatting on any page (messages, labels, captions, options, Plotly)."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.synthetic import sample_applicants
from core.text import safe_text
from tests.app.conftest import open_page, open_section, shown
from tests.app.test_pages import upload

EVIL = "http://evil.example"
NAMES = [
    f"![x]({EVIL}/i.png)",
    f'<a href="{EVIL}">click</a>',
    "<b>bold</b> <img src=x onerror=alert(1)>",
    "**loud** _quiet_ `code` # heading",
    f"[link]({EVIL}/l) :red[red] $x^2$",
]
FILE_NAME = f"![f]({EVIL}/f.png).csv"
HEADER = f"[h]({EVIL}/h)"
SCORE_SECTIONS = (
    "score_rejected_open",
    "score_warnings_open",
    "score_capture_open",
    "score_groups_open",
    "score_detail_open",
    "score_histogram_open",
)


def hostile_file() -> bytes:
    raw = sample_applicants(40, random_state=9).astype(str)
    raw.loc[: len(NAMES) - 1, "NAME"] = NAMES
    raw[HEADER] = "extra"
    raw.loc[10, "STATUS"] = f"<i>{EVIL}</i>"  # a rejected cell quoted in its reason
    # a never-seen category: data-check sentences, group tables, flags and charts, the review queue
    raw.loc[11:30, "CLASSIFICATION"] = f"<b>C</b>![c]({EVIL}/c.png)"
    return raw.to_csv(index=False).encode()


def rendered_sources(at: AppTest) -> list[str]:
    """The Markdown/HTML sources of everything that renders Markdown, plus every chart's JSON."""
    out = []
    for kind in (
        "markdown",
        "caption",
        "error",
        "warning",
        "info",
        "success",
        "title",
        "subheader",
        "header",
    ):
        out += [str(e.value) for e in at.get(kind)]
    for widget in ("radio", "selectbox", "multiselect", "text_input", "text_area", "number_input", "slider"):
        out += [str(w.label) for w in at.get(widget)]
    out += [str(o) for r in at.radio for o in r.options]  # radio options render Markdown
    out += [m.label for m in at.metric]
    out += [c.proto.spec for c in at.get("plotly_chart")]
    return out


def assert_inert(at: AppTest) -> str:
    sources = rendered_sources(at)
    for text in sources:
        for bad in ("](http", "<a ", "<b>", "<img", "<i>", "**loud**", ":red[", "$x^2$"):
            assert bad not in text, (bad, text[:300])
    return "\n".join(shown(t) for t in sources)


def test_payloads_through_every_page(app: AppTest) -> None:
    upload(app, FILE_NAME, hostile_file())
    visible = assert_inert(app)
    assert f"Ignored extra columns: {HEADER.upper()}" in visible  # shown, as text
    assert metrics_ok(app)
    for section in SCORE_SECTIONS:  # every collapsible section open: all of it is inspected
        open_section(app, section)
    assert_inert(app)
    app.number_input(key="score_group_min").set_value(5).run()  # small groups: the hostile value gets a bar
    app.selectbox(key="score_groups_field").set_value("CLASSIFICATION").run()
    assert_inert(app)
    for line in (2, 3, 4):  # applicants with hostile NAMEs: reasons, why not, what it would take
        app.selectbox(key="score_detail").set_value(line - 2).run()
        assert_inert(app)
    app.button(key="score_record").click().run()
    assert_inert(app)
    open_page(app, "history")
    for section in ("history_trend_open", "history_checks_open", "history_groups_open"):
        open_section(app, section)
    visible = assert_inert(app)
    assert "Scored batches" in visible
    open_page(app, "review")
    app.button(key="review_build").click().run()
    visible = assert_inert(app)
    assert "rows added to the queue" in visible
    open_page(app, "explain")
    app.radio(key="explain_source").set_value("batch").run()
    visible = assert_inert(app)
    assert FILE_NAME in visible  # the radio names the batch by its file name, escaped
    for i in range(len(NAMES)):
        app.selectbox(key="explain_pick").set_value(i).run()
        assert_inert(app)
    app.selectbox(key="explain_field").set_value("NAME").run()
    charts = "\n".join(c.proto.spec for c in app.get("plotly_chart"))
    assert safe_text(NAMES[1], 40) in charts  # the NAME reaches the dependence chart, escaped
    for page in ("compare", "models", "train"):
        open_page(app, page)
        if page == "models":
            open_section(app, "models_events_open")
        assert_inert(app)


def metrics_ok(at: AppTest) -> bool:
    table = next(d.value for d in at.dataframe if isinstance(d.value, pd.DataFrame) and "reasons" in d.value)
    return set(NAMES) <= set(table["NAME"])  # tables show the values exactly as uploaded


def test_safe_text_round_trips_through_markdown_semantics() -> None:
    import html
    import re

    for payload in [*NAMES, FILE_NAME, HEADER, "plain name 12"]:
        escaped = safe_text(payload)
        assert html.unescape(escaped) == payload
        assert not any(ch in re.sub(r"&#\d+;", "", escaped) for ch in "[]()<>*_`!#$:&")
