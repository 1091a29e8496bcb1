"""AppTest fixtures: the app against a temporary home with tiny trained models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import config

APP = str(config.PROJECT_ROOT / "app.py")


@pytest.fixture(autouse=True)
def navigation_not_pages_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest re-detects a ``pages/`` folder before every run and then runs pages directly
    (Streamlit's old multipage mode), skipping app.py's st.navigation router. The real
    server switches that mode off for good once st.navigation runs; do the same here."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def home(screening_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained home (so tests can record batches independently)."""
    dest = tmp_path / "home"
    shutil.copytree(screening_home, dest, ignore=shutil.ignore_patterns("*.db*", "users.json"))
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
