"""Server memory under uploads, in a real browser (goals of the security issue).

1. A 200,000-row upload retains at most 3x the file's size in the server while its session lives.
2. Three cycles of two sessions uploading such a file, then leaving: the server comes back within
   20% of its RSS after warm-up once the sessions are gone (Streamlit drops a closed session once
   its TTL has passed and its session store is next used, here by a new visitor).

Uses the models under $SCREENING_HOME (default ./var), trained by `make run` / `make models`.

    .venv/bin/python bench/memory.py [--rows 200000] [--cycles 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, applicant_files, require_models, rss_mb

sys.path.insert(0, str(ROOT))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_server, wait_healthy

SESSION_TTL_S = 5  # the server forgets a closed session this long after its socket closes


def upload(browser, url: str, path: Path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("input[type=file]", state="attached", timeout=120_000)
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_selector("button:has-text('Download scored applicants')", timeout=300_000)
    page.wait_for_timeout(1000)
    return context


def settle(pid: int, seconds: float) -> float:
    time.sleep(seconds)
    return rss_mb(pid)


def visit(browser, url: str) -> None:
    """A new visitor: Streamlit drops expired sessions when its session store is next used."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("input[type=file]", state="attached", timeout=120_000)
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from core import config

    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        files = applicant_files(Path(tmp), {"applicants": args.rows, "small": 2000})
        big, small = files["applicants"], files["small"]
        size_mb = big.stat().st_size / 2**20
        port = free_port()
        proc = start_server(
            config.home(), port, extra=["--server.disconnectedSessionTTL", str(SESSION_TTL_S)]
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(port)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                upload(browser, url, small).close()  # warm-up: model loaded, caches filled
                time.sleep(SESSION_TTL_S + 2)
                visit(browser, url)
                warm = settle(proc.pid, 5)
                print(f"file {size_mb:.1f} MB ({args.rows:,} rows); server after warm-up: {warm:.0f} MB")
                before = rss_mb(proc.pid)
                one = upload(browser, url, big)
                held = settle(proc.pid, 12) - before  # the janitor has run by then (every 5 s)
                print(f"one session holding the upload: +{held:.0f} MB = {held / size_mb:.2f}x the file "
                      f"(goal <= 3x) -> {'met' if held <= 3 * size_mb else 'NOT met'}")  # fmt: skip
                one.close()
                for cycle in range(1, args.cycles + 1):
                    contexts = [upload(browser, url, big) for _ in range(2)]
                    peak = rss_mb(proc.pid)
                    for c in contexts:
                        c.close()
                    time.sleep(SESSION_TTL_S + 2)
                    visit(browser, url)  # the left sessions have expired by now and are dropped
                    after = settle(proc.pid, 12)  # the janitor runs every 5 s
                    print(f"cycle {cycle}: two sessions {peak:.0f} MB, after they left {after:.0f} MB "
                          f"({(after / warm - 1) * 100:+.0f}% of warm-up)")  # fmt: skip
                verdict = "met" if after <= warm * 1.2 else "NOT met"
                print(f"back within 20% of warm-up after {args.cycles} cycles: {verdict}")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
