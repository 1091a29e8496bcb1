"""WCAG 2.1 AA in a real browser: axe-core on every page and state a user reaches (zero violations),
and the staff flow by keyboard alone with a visible focus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import config
from core.synthetic import generate
from tests.browser.conftest import (
    chromium_available,
    free_port,
    shot,
    start_server,
    stop_server,
    wait_healthy,
    wait_idle,
)
from tests.browser.test_security import USERS

pytestmark = pytest.mark.browser
TIMEOUT = 90_000
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def a11y_server(screening_home: Path, tmp_path_factory: pytest.TempPathFactory):
    chromium_available()
    pytest.importorskip("axe_playwright_python")
    home = tmp_path_factory.mktemp("a11y") / "home"
    shutil.copytree(screening_home, home, ignore=shutil.ignore_patterns("*.db*", "backups", "auth_*"))
    record_batch(home, "recorded.csv", random_state=91)
    port = free_port()
    proc = start_server(home, port, users=USERS)
    try:
        wait_healthy(port)
        yield f"http://127.0.0.1:{port}", home
    finally:
        stop_server(proc)


def record_batch(home: Path, name: str, random_state: int) -> None:
    """Score and record a synthetic batch of 120 applicants with the CLI, as user ana."""
    src = home / name
    generate(120, random_state=random_state, with_target=False).to_csv(src, index=False)
    env = {**os.environ, "SCREENING_HOME": str(home)}
    env.pop("SCREENING_DB_URL", None)
    subprocess.run(
        [sys.executable, "-m", "core", "score", "--input", str(src), "--output", str(home / "out.csv"),
         "--record", "--user", "ana"],
        cwd=config.PROJECT_ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip


def open_as_staff(browser, url: str, link: str, marker: str, file_name: str):
    """Sign in as staff and open a page from the menu; the page shows the batch recorded from
    ``file_name`` (the newest). Returns the browser context and the page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, url, "sam", "staff-password")
    page.get_by_role("link", name=link).first.click()
    settle(page, marker)
    assert file_name in page.get_by_role("combobox", name="Batch").input_value()
    return context, page


def stored_row(home: Path, file_name: str, line: str):
    """One stored row of the batch recorded from ``file_name``, and whether it is recommended now."""
    from core import record as recorded
    from core import storage

    db = f"sqlite:///{home / 'screening.db'}"
    [ours] = [b for b in storage.list_batches(db) if b.file_name == file_name]
    row = recorded.load_batch(ours.id, db).rows.set_index("source_line").loc[line]
    storage.reset_engines()
    return row, int(row["final_decision"]) == 1


def saved_sentence(line: int, row, was: bool) -> str:
    """The confirmation of an override that turned the row's decision around."""
    change = (
        "decline (was recommended, now not recommended)"
        if was
        else "approve (was not recommended, now recommended)"
    )
    return f"Override saved for line {line} · EIN {row['EIN']} · {row['NAME']}: {change}."


def violations(page) -> list[str]:
    """axe-core's WCAG 2.1 AA violations on the page as it rests. Streamlit dims the previous run's
    elements while a run is in progress (their contrast drops for that moment), so a finding must
    still be there once the page has rested again."""
    from axe_playwright_python.sync_playwright import Axe

    def run() -> list[str]:
        idle(page)
        result = Axe().run(page, options={"runOnly": {"type": "tag", "values": RULES}})
        return [
            f"{v['id']} ({v['impact']}): {len(v['nodes'])} × {v['nodes'][0]['target']}"
            for v in result.response["violations"]
        ]

    found = run()
    if found:
        page.wait_for_timeout(3000)
        found = run()
    return found


def idle(page) -> None:
    wait_idle(page, TIMEOUT)


def settle(page, marker: str) -> None:
    page.wait_for_selector(f"text={marker}", timeout=TIMEOUT)
    idle(page)
    page.wait_for_timeout(1000)
    idle(page)


def sign_in(page, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.wait_for_selector("input[type=password]", timeout=TIMEOUT)
    page.get_by_label("User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    settle(page, "Score applicants")


def open_expanders(page) -> None:
    """Open every collapsible section, including those that appear inside a section once it is open
    (a section's body runs only when it is opened, which reruns the page)."""
    closed = "[data-testid=stExpander] details:not([open]) > summary"
    for _ in range(40):
        summaries = [s for s in page.locator(closed).all() if s.is_visible()]
        if not summaries:  # none left, unless a rerun that has not started yet is about to add some
            page.wait_for_timeout(1500)
            idle(page)
            summaries = [s for s in page.locator(closed).all() if s.is_visible()]
            if not summaries:
                break
        summaries[0].click()
        page.wait_for_timeout(300)
        idle(page)
    assert not [s for s in page.locator(closed).all() if s.is_visible()]


def test_every_page_and_state_has_no_axe_violation(browser, a11y_server, tmp_path: Path) -> None:
    url, _ = a11y_server
    found: dict[str, list[str]] = {}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("input[type=password]", timeout=TIMEOUT)
    page.wait_for_timeout(1500)
    found["sign-in form"] = violations(page)
    sign_in(page, url, "ana", "analyst-pass")
    found["Score before an upload"] = violations(page)
    labelled = tmp_path / "labelled.csv"
    generate(400, random_state=92).to_csv(labelled, index=False)
    page.locator("input[type=file]").first.set_input_files(str(labelled))
    settle(page, "Expected accuracy")
    found["Score after an upload"] = violations(page)
    open_expanders(page)
    found["Score with every section open"] = violations(page)
    shot(page, "a11y-score")
    for title, marker in [
        ("History", "Scored batches"), ("Review", "Review queue"), ("Explain", "What if?"),
        ("Compare", "Pairwise"), ("Models", "Model card"), ("Train", "Training data"),
    ]:  # fmt: skip
        page.get_by_role("link", name=title).first.click()
        settle(page, marker)
        if title == "Review":
            page.get_by_role("button", name="Build the queue").click()
            settle(page, "rows added to the queue")
        found[title] = violations(page)
        if title in ("History", "Compare", "Explain"):
            open_expanders(page)
            found[f"{title} with every section open"] = violations(page)
        shot(page, f"a11y-{title.lower()}")
    context.close()
    assert {k: v for k, v in found.items() if v} == {}


def focus_visible(page) -> bool:
    """The focused element (or its focus ring holder) draws an outline or a box shadow."""
    return page.evaluate(
        """() => {
            let el = document.activeElement;
            for (let i = 0; el && i < 4; i++, el = el.parentElement) {
                const s = getComputedStyle(el);
                const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
                if (ring || s.boxShadow !== 'none') return true;
            }
            return false;
        }"""
    )


DESCRIBE = """() => {
    const el = document.activeElement;
    if (!el) return 'none';
    const text = (el.getAttribute('aria-label') || el.innerText || el.value || '').trim().slice(0, 40);
    return `${el.tagName}${el.type ? '[' + el.type + ']' : ''} ${JSON.stringify(text)}`;
}"""


def tab_to(page, test: str, limit: int = 400) -> None:
    """Press Tab until the focused element passes ``test`` (a JS expression over ``el``); on failure
    the message lists where the focus went, and a screenshot is kept."""
    idle(page)
    trail = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const el = document.activeElement; return !!({test}); }}"):
            return
        trail.append(page.evaluate(DESCRIBE))
    shot(page, "a11y-tab-never-reached")
    raise AssertionError(f"Tab never reached: {test}; the focus went through: " + " | ".join(trail[:120]))


def test_the_staff_flow_works_by_keyboard_alone(browser, a11y_server, tmp_path: Path) -> None:
    url, home = a11y_server
    applicants = tmp_path / "keyboard.csv"
    generate(60, random_state=93, with_target=False).to_csv(applicants, index=False)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    # Playwright asks the browser to hand it file choosers when the first listener is added, and
    # does not wait for the browser to confirm; a chooser that opens before that is cancelled by
    # headless Chromium. Listening from the start leaves no such race at the upload below.
    choosers: list = []

    def remember(chooser) -> None:
        choosers.append(chooser)

    page.on("filechooser", remember)
    page.goto(url)
    page.wait_for_selector("input[type=password]", timeout=TIMEOUT)
    tab_to(
        page,
        "el.labels && [...el.labels].some(l => l.innerText.includes('User name'))",
    )
    page.keyboard.type("sam")
    tab_to(page, "el.type === 'password'")
    assert focus_visible(page)
    page.keyboard.type("staff-password")
    page.keyboard.press("Enter")
    settle(page, "Score applicants")
    # upload: the uploader's button opens the file chooser from the keyboard
    tab_to(page, "el.tagName === 'BUTTON' && el.closest('[data-testid=stFileUploaderDropzone]')")
    assert focus_visible(page)
    assert choosers == []
    with page.expect_file_chooser(timeout=TIMEOUT) as chooser:
        page.keyboard.press("Enter")
    assert len(choosers) == 1
    chooser.value.set_files(str(applicants))
    settle(page, "Expected accuracy")
    # the rule: the radio group moves with the arrow keys, the budget is typed
    tab_to(
        page,
        "el.type === 'radio' && (el.closest('[role=radiogroup]')?.innerText || '').includes('Budget')",
    )
    page.keyboard.press("ArrowRight")
    settle(page, "Total budget")
    tab_to(
        page,
        "el.tagName === 'INPUT' && (el.getAttribute('aria-label') || '').startsWith('Total budget')",
    )
    page.keyboard.type("1,000,000")
    page.keyboard.press("Enter")
    settle(page, "The budget ran out")
    # download and record
    tab_to(page, "el.tagName === 'BUTTON' && el.innerText.includes('Download scored applicants')")
    with page.expect_download(timeout=TIMEOUT) as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == "scored_keyboard.csv"
    tab_to(page, "el.tagName === 'BUTTON' && el.innerText.includes('Record this batch')")
    assert focus_visible(page)
    page.keyboard.press("Enter")
    settle(page, "Recorded as batch")
    # override a row on History
    tab_to(page, "el.tagName === 'A' && el.innerText.trim().endsWith('History')")
    page.keyboard.press("Enter")
    settle(page, "Override a recommendation")
    # the form starts on line 2 and Approve; an override must change the decision, so line 2's
    # stored recommendation decides whether the arrow key moves to Decline
    row, was = stored_row(home, "keyboard.csv", "2")
    tab_to(page, "el.closest('[data-testid=stForm]') && el.type === 'radio'")
    if was:
        page.keyboard.press("ArrowRight")  # Decline (do not fund)
    tab_to(page, "el.tagName === 'TEXTAREA'")
    page.keyboard.type("Checked by keyboard")
    tab_to(page, "el.tagName === 'BUTTON' && el.innerText.includes('Save override')")
    page.keyboard.press("Enter")
    settle(page, saved_sentence(2, row, was))
    shot(page, "a11y-keyboard-flow")
    context.close()


def test_the_review_queue_end_to_end(browser, a11y_server) -> None:
    from core import storage

    url, home = a11y_server
    # a batch of its own (the newest, so the page selects it): nothing of it is queued yet,
    # whatever the other tests on this server did
    record_batch(home, "review-queue.csv", random_state=94)
    context, page = open_as_staff(browser, url, "Review", "Review queue", "review-queue.csv")
    page.get_by_role("button", name="Build the queue").click()
    settle(page, "rows added to the queue")
    # the page selects the first open item; resolve it with the decision that turns it around
    db = f"sqlite:///{home / 'screening.db'}"
    [ours] = [b for b in storage.list_batches(db) if b.file_name == "review-queue.csv"]
    line = int(storage.list_review_items(ours.id, db)["source_line"].iloc[0])
    storage.reset_engines()
    row, was = stored_row(home, "review-queue.csv", str(line))
    flip, change = (
        ("decline", "was recommended, now not recommended")
        if was
        else ("approve", "was not recommended, now recommended")
    )
    page.get_by_text("Decline (do not fund)" if was else "Approve (fund)").click()
    page.get_by_label("Reason (required)").fill("looked at it in the browser")
    page.get_by_role("button", name="Resolve").click()
    settle(
        page,
        f"Resolved line {line} · EIN {row['EIN']} · {row['NAME']}: {flip}. It is now the row's override "
        f"in History ({change}).",
    )
    context.close()
    import pandas as pd

    current = pd.concat([storage.results_with_overrides(b.id, db) for b in storage.list_batches(db)])
    resolved = current[current["override_reason"] == "review: looked at it in the browser"]
    assert resolved["source_line"].astype(int).tolist() == [line]
    assert resolved["override"].tolist() == [flip]
    assert resolved["final_decision"].tolist() == [0 if was else 1]
    storage.reset_engines()


def test_a_refused_override_keeps_the_choice_in_the_browser(browser, a11y_server) -> None:
    from core import storage

    url, home = a11y_server
    record_batch(home, "override-refused.csv", random_state=96)  # the newest batch: History opens it
    row, was = stored_row(home, "override-refused.csv", "3")
    choice = "Decline (do not fund)" if was else "Approve (fund)"  # a real change for line 3
    context, page = open_as_staff(
        browser, url, "History", "Override a recommendation", "override-refused.csv"
    )
    applicant = page.get_by_role("combobox", name="Applicant (line in the file · EIN · NAME)")
    applicant.click()
    page.keyboard.type(f"line 3 · {row['EIN']}")
    page.keyboard.press("Enter")
    idle(page)
    page.get_by_text(choice).click()
    page.get_by_role("button", name="Save override").click()  # no reason: refused
    settle(page, "An override needs a reason.")
    assert applicant.input_value().startswith(f"line 3 · {row['EIN']}")  # the applicant stays
    assert page.get_by_role("radio", name=choice).is_checked()  # and so does the decision
    page.get_by_label("Reason (required)").fill("checked in the browser")
    page.get_by_role("button", name="Save override").click()
    settle(page, saved_sentence(3, row, was))
    context.close()
    db = f"sqlite:///{home / 'screening.db'}"
    [ours] = [b for b in storage.list_batches(db) if b.file_name == "override-refused.csv"]
    current = storage.results_with_overrides(ours.id, db).set_index("source_line").loc["3"]
    storage.reset_engines()
    assert int(current["final_decision"]) == (0 if was else 1)
    assert current["override_reason"] == "checked in the browser"
