"""The login gate and roles, enforced in the pages."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import auth
from tests.app.conftest import APP


@pytest.fixture
def accounts(home, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        f"sam:staff:{auth.hash_password('staff-password')}",
        f"ana:analyst:{auth.hash_password('analyst-password')}",
    ]
    monkeypatch.setenv("SCREENING_USERS", ";".join(entries))
    monkeypatch.setattr(auth, "MAX_DELAY_S", 0.01)
    for name in ("sam", "ana"):
        auth.THROTTLE.succeeded(name)


def login(name: str, password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.text_input(key="login_name").set_value(name)
    at.text_input(key="login_password").set_value(password)
    at.button[0].click().run()
    assert not at.exception
    return at


def test_login_required_when_accounts_exist(accounts) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert at.text_input(key="login_password")
    assert not at.file_uploader  # no data before login


def test_wrong_password_is_refused(accounts) -> None:
    at = login("sam", "not-the-password")
    assert any("Wrong user name or password" in e.value for e in at.error)
    assert not at.file_uploader


def test_staff_scores_but_cannot_train_or_compare(accounts) -> None:
    at = login("sam", "staff-password")
    assert at.file_uploader(key="score_upload") is not None
    for page in ("train", "compare"):  # not even offered in the navigation
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")


@pytest.mark.parametrize("page", ["train", "compare"])
def test_pages_enforce_roles_themselves(home, page: str) -> None:
    """Reached directly, an analyst page still refuses a staff user."""
    from core.config import PROJECT_ROOT

    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state["user"] = auth.User("sam", "staff")
    at.run()
    assert any(f"cannot {page}" in e.value for e in at.error)
    assert not at.file_uploader and not at.get("plotly_chart")


def test_analyst_reaches_train(accounts) -> None:
    at = login("ana", "analyst-password")
    at.switch_page("pages/train.py")
    at.run()
    assert at.title[0].value == "Train model variants"


def test_logout(accounts) -> None:
    at = login("ana", "analyst-password")
    at.sidebar.button(key="logout").click().run()
    assert at.text_input(key="login_password")


def test_no_accounts_beyond_localhost_serves_nothing(home, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config as st_config

    monkeypatch.delenv("SCREENING_USERS", raising=False)
    old = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
    finally:
        st_config.set_option("server.address", old)
    assert any("no staff accounts exist" in e.value for e in at.error)
    assert not at.file_uploader
