"""Dashboard speed in a real browser, over several server starts (the machine's speed varies).

1. From `streamlit run serve.py` to the Score page rendered in headless Chromium (goal <= 8 s).
2. From uploading a 10,000-row file to the results shown (the results table drawn with its rows and
   the download button there): the first upload after a start and a later one, a different file in
   the same session (goal <= 3 s each, with the live model).
3. The server's memory before any training (goal <= 500 MB; serving never imports TensorFlow).

Each run starts a fresh server. Every run's figures are printed, then the median and the slowest;
the goals are read on the median (one run is one draw from a shared machine's moods), and the
slowest is reported beside it.

Uses the models under $SCREENING_HOME (default ./var), trained by `make run` / `make models`.

    .venv/bin/python bench/app.py [--runs 5] [--rows 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, applicant_files, require_models, rss_mb

sys.path.insert(0, str(ROOT))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_server, wait_healthy

# the results table (the page's last table) has drawn rows, not only its frame
RESULTS_DRAWN = """() => {
  const tables = document.querySelectorAll('[data-testid=stDataFrame]');
  const last = tables[tables.length - 1];
  return !!last && !!last.querySelector('canvas') && last.querySelectorAll('[role=row]').length > 5;
}"""


def upload_seconds(page, path: Path) -> float:
    """Upload a file on the Score page and time it until the results table is drawn and the results
    can be downloaded."""
    started = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_selector("button:has-text('Download scored applicants')", timeout=120_000)
    page.wait_for_function(RESULTS_DRAWN, timeout=120_000, polling=20)
    return time.perf_counter() - started


def one_run(playwright, home: Path, big: Path, big2: Path) -> dict[str, float]:
    """Start a server, open the Score page, upload twice; the server's memory at the end."""
    port = free_port()
    started = time.perf_counter()
    proc = start_server(home, port)
    try:
        wait_healthy(port)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector("h1:has-text('Score applicants')", timeout=60_000)
        page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
        render = time.perf_counter() - started
        page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=60_000)
        first = upload_seconds(page, big)
        # a second, different file in the same session: the model is loaded now
        page.reload()
        page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
        page.wait_for_timeout(1000)
        later = upload_seconds(page, big2)
        rss = rss_mb(proc.pid)
        browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return {"render": render, "first": first, "later": later, "rss": rss}


GOALS = {"render": 8.0, "first": 3.0, "later": 3.0, "rss": 500.0}
LABELS = {
    "render": "streamlit run -> Score page rendered",
    "first": "upload {rows:,} rows -> results [{model}], first upload after start",
    "later": "upload {rows:,} rows -> results [{model}], model loaded",
    "rss": "server memory after both uploads, no training",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="server starts to time (default 5)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from core import config
    from core.registry import live_version

    require_models()
    model = live_version(config.models_dir())
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = applicant_files(Path(tmp), {"applicants": args.rows, "applicants2": args.rows})
        with sync_playwright() as pw:
            for i in range(args.runs):
                run = one_run(pw, config.home(), files["applicants"], files["applicants2"])
                runs.append(run)
                print(
                    f"run {i + 1}: page {run['render']:.1f} s, first upload {run['first']:.2f} s, "
                    f"later upload {run['later']:.2f} s, server {run['rss']:.0f} MB",
                    flush=True,
                )
    for key, goal in GOALS.items():
        values = [run[key] for run in runs]
        unit, digits = ("MB", 0) if key == "rss" else ("s", 2)
        median, worst = statistics.median(values), max(values)
        within = sum(v <= goal for v in values)
        verdict = "met" if median <= goal else "NOT met"
        print(
            f"{LABELS[key].format(rows=args.rows, model=model)}: median {median:.{digits}f} {unit}, "
            f"slowest {worst:.{digits}f} {unit}, {within} of {len(values)} runs within "
            f"(goal <= {goal:g} {unit} on the median: {verdict})"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
