"""The real server, as an attacker would try it: page URLs before any sign-in (fresh and restarted
servers), foreign Host headers, framing, and hostile text that must not fetch anything remote."""

from __future__ import annotations

import re
import shutil
import socket
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from core import auth
from core.security import RESULT_MODULES
from core.synthetic import sample_applicants
from tests.browser.conftest import (
    chromium_available,
    free_port,
    shot,
    start_server,
    stop_server,
    wait_healthy,
)

pytestmark = pytest.mark.browser
TIMEOUT = 90_000
PATHS = ["", "score", "history", "review", "explain", "compare", "models", "train"]
PAGE_MARKERS = ["Scored batches", "Review queue", "Train model variants", "Explain scores",
                "Compare model versions", "Model versions", "Score applicants", "Upload a file"]  # fmt: skip


@pytest.fixture(scope="module")
def accounts_home(screening_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium_available()
    home = tmp_path_factory.mktemp("gate") / "home"
    shutil.copytree(screening_home, home, ignore=shutil.ignore_patterns("*.db*", "backups", "auth_*"))
    return home


USERS = ";".join(
    [f"sam:staff:{auth.hash_password('staff-password')}", f"ana:analyst:{auth.hash_password('analyst-pass')}"]
)


def sees_only_the_login_form(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("input[type=password]", timeout=TIMEOUT)
    page.wait_for_timeout(2500)  # anything a page script would draw has had time to arrive
    main = page.locator("[data-testid=stMain]").inner_text()
    assert "Sign in" in main
    for marker in PAGE_MARKERS:
        assert marker not in main, (url, marker)
    assert page.locator("input[type=file]").count() == 0
    assert page.locator("[data-testid=stSidebarNav] a").count() == 0


@pytest.mark.parametrize("path", PATHS)
def test_page_url_as_the_first_request_after_a_start_shows_only_the_login(
    accounts_home, browser, path
) -> None:
    """Each page URL is the very first request of a freshly (re)started server with accounts."""
    port = free_port()
    proc = start_server(accounts_home, port, users=USERS)
    try:
        wait_healthy(port)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        try:
            sees_only_the_login_form(context.new_page(), f"http://127.0.0.1:{port}/{path}")
        finally:
            context.close()
    finally:
        stop_server(proc)


def test_staff_sign_in_then_analyst_pages_stay_closed(accounts_home, browser) -> None:
    port = free_port()
    proc = start_server(accounts_home, port, users=USERS)
    try:
        wait_healthy(port)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        sees_only_the_login_form(page, f"http://127.0.0.1:{port}/train")
        page.get_by_label("User name").fill("sam")
        page.get_by_role("textbox", name="Password").fill("staff-password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("h1:has-text('Score applicants')", timeout=TIMEOUT)
        links = page.locator("[data-testid=stSidebarNav] a").all_inner_texts()
        assert [t.split()[-1] for t in links] == ["Score", "History", "Review", "Explain"]
        page.goto(f"http://127.0.0.1:{port}/train")  # a reload: signed out again, login only
        page.wait_for_selector("input[type=password]", timeout=TIMEOUT)
        assert "Train model variants" not in page.locator("[data-testid=stMain]").inner_text()
        context.close()
    finally:
        stop_server(proc)


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_foreign_host_and_framing_are_refused(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    answer = raw_request(port, b"GET / HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 421")
    upgrade = (
        b"GET /_stcore/stream HTTP/1.1\r\nHost: rebind.evil.example:8501\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: http://rebind.evil.example:8501\r\n\r\n"
    )
    assert not raw_request(port, upgrade).startswith(b"HTTP/1.1 101")
    with urllib.request.urlopen(server, timeout=10) as response:
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        link = response.headers["Link"]
    # the page names the result modules for preloading; each is a file this server serves
    modules = re.findall(r"<([^<>]+)>; rel=modulepreload", link)
    assert ", ".join(f"<{m}>; rel=modulepreload" for m in modules) == link
    assert {m.split("/")[-1].split(".")[0] for m in modules} == set(RESULT_MODULES)
    for module in modules:
        with urllib.request.urlopen(f"{server}/{module}", timeout=10) as response:
            assert response.status == 200 and "javascript" in response.headers["Content-Type"]


EVIL = "http://evil.example"


def test_hostile_text_fetches_nothing_remote(server: str, page, tmp_path: Path) -> None:
    raw = sample_applicants(30, random_state=9).astype(str)
    raw.loc[0, "NAME"] = f"![x]({EVIL}/name.png)"
    raw.loc[1, "NAME"] = f'<img src="{EVIL}/img.png"><a href="{EVIL}">click</a>'
    raw[f"[h]({EVIL}/header.png)"] = "extra"
    hostile = tmp_path / f"![f]({EVIL.replace('/', '_')}_f.png).csv"
    raw.to_csv(hostile, index=False)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server)
    page.wait_for_selector("h1:has-text('Score applicants')", timeout=TIMEOUT)
    page.locator("input[type=file]").first.set_input_files(str(hostile))
    page.wait_for_selector("text=Results", timeout=TIMEOUT)
    page.wait_for_timeout(2000)
    main = page.locator("[data-testid=stMain]")
    assert (
        main.locator(f"a[href^='{EVIL}']").count() == 0 and main.locator(f"img[src^='{EVIL}']").count() == 0
    )
    assert f"[h]({EVIL}/header.png)".upper() in main.inner_text()  # shown as text
    page.get_by_role("link", name="Explain").first.click()
    page.wait_for_selector("text=What if?", timeout=TIMEOUT)
    page.wait_for_timeout(2000)
    shot(page, "security-hostile-explain")
    remote = [u for u in requests if not u.startswith((server, "data:", "blob:"))]
    assert remote == []
    assert pd.notna(len(requests))
