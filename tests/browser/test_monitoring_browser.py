"""The data-check panel and the group rates in a real browser, on a clean and a shifted file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.synthetic import generate
from tests.browser.conftest import shot, wait_idle
from tests.browser.test_browser import TIMEOUT, wait_for_app

pytestmark = pytest.mark.browser


def upload(page, path: Path, marker: str = "Expected accuracy") -> str:
    """Upload a file and return the page's text once ``marker`` (text of this file's results) shows
    and the run has finished (the previous file's results stay on the page until they are replaced)."""
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_selector("text=Data checks against the training data", timeout=TIMEOUT)
    page.wait_for_selector(f"text={marker}", timeout=TIMEOUT)
    wait_idle(page, TIMEOUT)
    page.wait_for_timeout(500)
    wait_idle(page, TIMEOUT)
    return page.locator("[data-testid=stMain]").inner_text()


def test_a_shifted_file_fails_its_checks_and_a_clean_one_does_not(server: str, page, tmp_path: Path) -> None:
    clean = generate(600, random_state=0, with_target=False).sample(400, random_state=3)
    clean_path = tmp_path / "clean.csv"
    clean.to_csv(clean_path, index=False)
    shifted = clean.assign(ASK_AMT=clean["ASK_AMT"] * 1000)
    shifted_path = tmp_path / "shifted.csv"
    shifted.to_csv(shifted_path, index=False)

    page.goto(server)
    wait_for_app(page)
    text = upload(page, clean_path)
    assert "show this batch differs strongly" not in text
    assert "Traceback" not in text
    shot(page, "monitoring-clean")

    text = upload(page, shifted_path, marker="Data checks failed for this batch")
    assert "differs strongly from the training data (ASK_AMT" in text
    assert "Data checks failed for this batch: treat this estimate as unreliable." in text
    shot(page, "monitoring-shifted")


def test_group_rates_open_under_the_decision(server: str, page, tmp_path: Path) -> None:
    path = tmp_path / "groups.csv"
    generate(300, random_state=4, with_target=False).to_csv(path, index=False)
    page.goto(server)
    wait_for_app(page)
    upload(page, path)
    page.get_by_text("Groups: who this decision selects").click()
    page.wait_for_selector("text=Field to chart", timeout=TIMEOUT)
    page.wait_for_selector("text=Selection rate by APPLICATION_TYPE", timeout=TIMEOUT)
    text = page.locator("[data-testid=stMain]").inner_text()
    assert "four-fifths" in text
    shot(page, "groups-score")
