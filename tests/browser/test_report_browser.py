"""The batch report opened in Chromium with every network request blocked: no console error, every
figure drawn, and Chromium's print-to-PDF has the sections in order."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core import batch, storage
from core.decisions import Rule
from core.report import batch_report, write_html
from core.synthetic import generate
from tests.browser.conftest import chromium_available, shot
from tests.conftest import bundle_of, csv_bytes

pytestmark = pytest.mark.browser
SECTIONS = [
    "Batch summary", "The model", "Data checks and the accuracy estimate", "The decision", "Group rates",
    "Overrides and review resolutions", "Top reasons across the batch", "Recommended applicants",
]  # fmt: skip


@pytest.fixture
def report_file(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    chromium_available()
    monkeypatch.setenv("SCREENING_DB_URL", f"sqlite:///{tmp_path / 'b.db'}")
    storage.reset_engines()
    bundle = bundle_of(models_dir, "tuned")
    scored = batch.score_upload(bundle, csv_bytes(generate(500, random_state=81, with_target=False)), "b.csv")
    batch_id = batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.5)), "ann", live=True)
    storage.add_override(batch_id, int(scored.source_lines[3]), 1, "board decision", "bo")
    document, facts = batch_report(batch_id)
    path = tmp_path / "report.html"
    write_html(path, document)
    storage.reset_engines()
    return path, facts.figures


def test_the_report_opens_offline_draws_every_figure_and_prints(browser, report_file) -> None:
    from pypdf import PdfReader

    path, figures = report_file
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    requests: list[str] = []

    def block(route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    context.route("**/*", block)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    page.wait_for_timeout(1000)
    assert page.locator(".js-plotly-plot").count() == figures >= 3
    drawn = page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].every(d => d.querySelector('.main-svg'))"
    )
    assert drawn is True
    assert errors == []
    assert requests == []
    assert page.locator("h2").all_inner_texts() == SECTIONS
    shot(page, "report")
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    text = "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)
    positions = [text.find(title) for title in SECTIONS]
    assert all(p >= 0 for p in positions), positions
    assert positions == sorted(positions)
    context.close()
