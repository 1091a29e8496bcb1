"""The gate: no page renders without a signed-in user when accounts exist; roles; throttled sign-in."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from core import auth
from core.config import PROJECT_ROOT
from tests.app.conftest import APP, shown

PAGES = ["score", "history", "review", "explain", "compare", "models", "train"]


@pytest.fixture
def accounts(home, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        f"sam:staff:{auth.hash_password('staff-password')}",
        f"ana:analyst:{auth.hash_password('analyst-password')}",
    ]
    monkeypatch.setenv("SCREENING_USERS", ";".join(entries))


def only_the_login_form(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="login_password") is not None
    assert not at.file_uploader and not at.dataframe and not at.get("plotly_chart")
    assert not at.get("download_button") and not at.sidebar.selectbox and not at.metric


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
    only_the_login_form(at)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_run_on_its_own_shows_only_the_login_form(accounts, page: str) -> None:
    """Streamlit runs pages/*.py directly until st.navigation has run once (e.g. the first request
    after a start is a page URL): the page itself must refuse."""
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.run()
    only_the_login_form(at)


@pytest.mark.parametrize("page", PAGES)
def test_no_default_role_stands_in_for_a_missing_login(accounts, page: str) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state["user"] = "ana"  # not an authenticated User record
    at.run()
    only_the_login_form(at)


def test_wrong_password_is_refused(accounts) -> None:
    at = login("sam", "not-the-password")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    only_the_login_form(at)


def test_lockout_after_repeated_failures(accounts) -> None:
    for _ in range(auth.ACCOUNT_FREE_FAILS):
        login("sam", "not-the-password")
    at = login("sam", "staff-password")
    assert at.error[0].value.startswith("Too many failed sign-ins. Try again in")
    only_the_login_form(at)
    assert [e["event"] for e in auth.read_audit()][-1] == "locked"


def test_staff_scores_but_cannot_train_compare_or_promote(accounts) -> None:
    at = login("sam", "staff-password")
    assert at.file_uploader(key="score_upload") is not None
    assert not at.sidebar.selectbox  # staff score with the live model only
    for page in ("train", "compare", "models"):  # not even offered in the navigation
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")


@pytest.mark.parametrize("page", ["train", "compare", "models"])
def test_pages_enforce_roles_themselves(accounts, page: str) -> None:
    """Reached directly, an analyst page still refuses a signed-in staff user."""
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state["user"] = auth.User("sam", "staff")
    at.session_state["user_seen"] = time.time()
    at.run()
    needed = "compare" if page == "models" else page
    assert [e.value for e in at.error] == [f"Your role (staff) cannot {needed}. "
                                           "Ask an analyst account for access."]  # fmt: skip
    assert not at.file_uploader and not at.get("plotly_chart") and not at.dataframe


def test_analyst_reaches_models_and_train(accounts) -> None:
    at = login("ana", "analyst-password")
    at.switch_page("pages/train.py")
    at.run()
    assert at.title[0].value == "Train model variants"
    at.switch_page("pages/models.py")
    at.run()
    assert at.title[0].value == "Model versions"


def test_logout_clears_the_pages(accounts) -> None:
    at = login("ana", "analyst-password")
    at.sidebar.button(key="logout").click().run()
    only_the_login_form(at)
    assert "user" not in at.session_state
    assert [e["event"] for e in auth.read_audit()][-2:] == ["success", "logout"]


def test_idle_session_expires(accounts) -> None:
    at = login("sam", "staff-password")
    at.session_state["user_seen"] = time.time() - 31 * 60
    at.run()
    only_the_login_form(at)
    assert any("signed out after a period of inactivity" in i.value for i in at.info)


def test_no_accounts_beyond_localhost_serves_nothing(home, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config as st_config

    old = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        for script in [APP, *(str(PROJECT_ROOT / "pages" / f"{p}.py") for p in PAGES)]:
            at = AppTest.from_file(script, default_timeout=120)
            at.run()
            assert any("no staff accounts exist" in shown(e.value) for e in at.error)
            assert not at.file_uploader and not at.dataframe and not at.text_input
    finally:
        st_config.set_option("server.address", old)
