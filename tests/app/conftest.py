"""AppTest fixtures: the app against a temporary home with tiny trained models.

No Streamlit internals are patched: AppTest runs the page scripts of ``pages/`` the way the real
server does before ``st.navigation`` has run, so the per-page gate is what these tests see.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import config

APP = str(config.PROJECT_ROOT / "app.py")


@pytest.fixture
def home(screening_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained home (so tests can record batches and promote independently)."""
    dest = tmp_path / "home"
    shutil.copytree(
        screening_home, dest, ignore=shutil.ignore_patterns("*.db*", "users.json", "backups", "auth_*")
    )
    monkeypatch.setenv("SCREENING_HOME", str(dest))
    monkeypatch.delenv("SCREENING_USERS", raising=False)
    monkeypatch.delenv("SCREENING_DB_URL", raising=False)
    return dest


@pytest.fixture
def app(home: Path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(value: object) -> str:
    """What a Markdown element's source shows as text (the escaping helper writes entities)."""
    return html.unescape(str(value))


def open_section(at: AppTest, key: str, state: bool = True) -> AppTest:
    """Open (``state=False``: close) a collapsible section (its body runs only while open) as a click
    on its header would."""
    at.session_state[key] = state
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
