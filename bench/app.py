"""Dashboard speed in a real browser.

1. From `streamlit run serve.py` to the Score page rendered in headless Chromium (goal <= 8 s).
2. From uploading a 10,000-row file to the results shown: the first upload after a start and a
   later one (goal <= 3 s each, with the live model).
3. The server's memory before any training (goal <= 500 MB; serving never imports TensorFlow).

Uses the models under $SCREENING_HOME (default ./var), trained by `make run` / `make models`.

    .venv/bin/python bench/app.py [--rows 10000] [--variant tuned]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, applicant_files, require_models, rss_mb

sys.path.insert(0, str(ROOT))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_server, wait_healthy


def upload_seconds(page, path: Path) -> float:
    """Upload a file on the Score page and time it until the results can be downloaded."""
    started = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_selector("button:has-text('Download scored applicants')", timeout=120_000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from core import config
    from core.registry import live_version

    require_models()
    with tempfile.TemporaryDirectory() as tmp:
        files = applicant_files(Path(tmp), {"applicants": args.rows, "applicants2": args.rows})
        big, big2 = files["applicants"], files["applicants2"]
        port = free_port()
        started = time.perf_counter()
        proc = start_server(config.home(), port)
        try:
            wait_healthy(port)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}")
                page.wait_for_selector("h1:has-text('Score applicants')", timeout=60_000)
                page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
                first_render = time.perf_counter() - started
                page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=60_000)
                cold = upload_seconds(page, big)
                # a second, different file in the same session: the model is loaded now
                page.reload()
                page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
                page.wait_for_timeout(1000)
                warm = upload_seconds(page, big2)
                rss = rss_mb(proc.pid)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    model = live_version(config.models_dir())
    print(f"streamlit run -> Score page rendered: {first_render:.1f} s (goal <= 8 s)")
    print(
        f"upload {args.rows:,} rows -> results [{model}], first upload after start: {cold:.1f} s "
        "(goal <= 3 s)"
    )
    print(f"upload {args.rows:,} rows -> results [{model}], model loaded: {warm:.1f} s (goal <= 3 s)")
    print(f"server memory after both uploads, no training: {rss:.0f} MB (goal <= 500 MB)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
