"""The dashboard in a real browser: upload the sample, get scored rows, download them, visit every page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core import config
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser
TIMEOUT = 90_000


def wait_for_app(page) -> None:
    page.wait_for_selector("h1:has-text('Score applicants')", timeout=TIMEOUT)


def test_score_sample_and_download(server: str, page, tmp_path: Path) -> None:
    page.goto(server)
    wait_for_app(page)
    shot(page, "01-score-empty")
    page.locator("input[type=file]").first.set_input_files(str(config.SAMPLE_APPLICANTS))
    page.wait_for_selector("text=Results", timeout=TIMEOUT)
    page.wait_for_selector("button:has-text('Download scored applicants')", timeout=TIMEOUT)
    shot(page, "02-score-results")
    with page.expect_download(timeout=TIMEOUT) as info:
        page.get_by_role("button", name="Download scored applicants (CSV)").click()
    assert info.value.suggested_filename == "scored_sample_applicants.csv"
    target = tmp_path / "scored.csv"
    info.value.save_as(target)
    scored = pd.read_csv(target)
    sample = pd.read_csv(config.SAMPLE_APPLICANTS)
    assert list(scored.columns[:6]) == [
        "source_line",
        "EIN",
        "NAME",
        "success_probability",
        "recommended",
        "reasons",
    ]
    assert scored["source_line"].tolist() == list(range(2, len(sample) + 2))
    assert scored["EIN"].tolist() == sample["EIN"].tolist()
    assert scored["success_probability"].between(0, 1).all()


# page link -> text that shows once the page has finished rendering
PAGES = {
    "Compare": "Pairwise",
    "Models": "Model card",
    "Explain": "What if?",
    "Train": "Training data",
    "History": "No batch recorded yet",
    "Review": "Review queue",
}


@pytest.mark.parametrize("title", list(PAGES))
def test_every_page_in_the_browser(server: str, page, title: str) -> None:
    page.goto(server)
    wait_for_app(page)
    page.get_by_role("link", name=title).first.click()
    page.wait_for_selector(f"text={PAGES[title]}", timeout=TIMEOUT)
    page.wait_for_load_state("networkidle")
    if page.locator(".js-plotly-plot").count():
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=TIMEOUT)
    page.wait_for_timeout(1500)
    text = page.locator("[data-testid=stMain]").inner_text()
    assert "Traceback" not in text and "Something went wrong" not in text
    shot(page, f"page-{title.lower()}")


def test_bad_upload_shows_message_not_traceback(server: str, page, tmp_path: Path) -> None:
    bad = tmp_path / "picture.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    page.goto(server)
    wait_for_app(page)
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.wait_for_selector("text=PNG image", timeout=TIMEOUT)
    text = page.locator("[data-testid=stMain]").inner_text()
    assert "Traceback" not in text
    shot(page, "03-score-bad-file")
