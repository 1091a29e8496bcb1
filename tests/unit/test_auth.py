"""Password hashing, throttling, accounts and the access decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import auth
from core.cli import main


def test_hash_and_verify() -> None:
    stored = auth.hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert auth.verify_password("correct horse", stored)
    assert not auth.verify_password("wrong horse", stored)
    assert not auth.verify_password("x", "garbage")
    assert auth.hash_password("same") != auth.hash_password("same")  # salted


@pytest.fixture
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SCREENING_HOME", str(tmp_path))
    return tmp_path


ACCOUNTS = {"ann": {"role": "staff", "hash": auth.hash_password("s3cret-pass")}}


def test_lockout_grows_exponentially_and_refuses_even_the_right_password(private_home: Path) -> None:
    t0 = 1_000_000.0
    for i in range(auth.ACCOUNT_FREE_FAILS - 1):
        assert auth.sign_in("ann", "nope", ACCOUNTS, client="10.0.0.1", now=t0 + i).message == (
            "Wrong user name or password."
        )
    last = auth.sign_in("ann", "nope", ACCOUNTS, client="10.0.0.1", now=t0 + 10)
    assert last.user is None
    locked = auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.0.0.2", now=t0 + 11)
    assert locked.user is None and locked.message.startswith("Too many failed sign-ins")
    assert auth.lockouts(now=t0 + 11) == {"ann": pytest.approx(auth.LOCK_BASE_S - 1)}
    # once the lock ends, one more failure locks twice as long
    later = t0 + 10 + auth.LOCK_BASE_S + 1
    assert auth.sign_in("ann", "nope", ACCOUNTS, client="10.0.0.3", now=later).user is None
    assert auth.lockouts(now=later)["ann"] == pytest.approx(2 * auth.LOCK_BASE_S)
    # the state is shared through the data directory (other sessions, processes, restarts), 0600
    assert (private_home / "auth_state.json").stat().st_mode & 0o777 == 0o600
    after = later + 2 * auth.LOCK_BASE_S + 1
    ok = auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.0.0.3", now=after)
    assert ok.user == auth.User("ann", "staff")
    assert auth.lockouts(now=after) == {}


def test_parallel_guessing_is_counted_before_passwords_are_checked(private_home: Path, monkeypatch) -> None:
    """40 sessions guessing at once get at most the free failures' worth of password checks."""
    import threading

    checks = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda pw, h: checks.append(pw) or real(pw, h))
    results = []
    barrier = threading.Barrier(40)

    def guess(i: int) -> None:
        barrier.wait()
        results.append(auth.sign_in("ann", f"guess-{i}", ACCOUNTS, client=f"10.1.0.{i}"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checks) == auth.ACCOUNT_FREE_FAILS
    assert (
        sum(r.message.startswith("Too many failed sign-ins") for r in results) == 40 - auth.ACCOUNT_FREE_FAILS
    )


def test_free_failures_never_lock_even_when_attempts_arrive_out_of_clock_order(private_home: Path) -> None:
    """An attempt that read the clock before another but reached the state after it is not locked out."""
    t0 = 1_500_000.0
    assert auth.sign_in("ann", "nope", ACCOUNTS, client="10.5.0.1", now=t0 + 1).message == (
        "Wrong user name or password."
    )
    assert auth.sign_in("ann", "nope", ACCOUNTS, client="10.5.0.2", now=t0).message == (
        "Wrong user name or password."
    )
    assert auth.lockouts(now=t0) == {}


def test_many_names_from_one_address_are_throttled(private_home: Path) -> None:
    t0 = 2_000_000.0
    for i in range(auth.CLIENT_FREE_FAILS):
        assert auth.sign_in(f"user{i}", "pw", ACCOUNTS, client="10.2.0.1", now=t0 + i).message == (
            "Wrong user name or password."
        )
    refused = auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.2.0.1", now=t0 + 30)
    assert refused.user is None and refused.message.startswith("Too many failed sign-ins")
    assert auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.2.0.9", now=t0 + 31).user is not None


def test_global_limit_stops_distributed_guessing(private_home: Path) -> None:
    t0 = 3_000_000.0
    for i in range(auth.GLOBAL_MAX_FAILS):
        auth.sign_in(f"name{i}", "pw", ACCOUNTS, client=f"10.3.{i // 250}.{i % 250}", now=t0 + i * 0.1)
    refused = auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.9.9.9", now=t0 + 10)
    assert refused.message.startswith("Too many failed sign-ins")
    later = t0 + auth.GLOBAL_WINDOW_S + 10
    assert auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.9.9.9", now=later).user is not None


def test_audit_log_records_who_when_where_never_the_password(private_home: Path) -> None:
    auth.sign_in("ann", "wrong-pass-123", ACCOUNTS, client="10.4.0.1")
    auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.4.0.1")
    auth.unlock("ann", by="ana")
    events = [(e["event"], e["user"], e["client"]) for e in auth.read_audit()]
    assert events == [("failure", "ann", "10.4.0.1"), ("success", "ann", "10.4.0.1"), ("unlock", "ann", "")]
    text = (private_home / "auth_audit.jsonl").read_text()
    assert "wrong-pass-123" not in text and "s3cret-pass" not in text
    assert (private_home / "auth_audit.jsonl").stat().st_mode & 0o777 == 0o600


def test_analyst_unlocks_an_account(private_home: Path) -> None:
    for _ in range(auth.ACCOUNT_FREE_FAILS):
        auth.sign_in("ann", "nope", ACCOUNTS, client="10.5.0.1")
    assert "ann" in auth.lockouts()
    assert main(["users", "unlock", "ann"]) == 0
    assert auth.lockouts() == {}
    assert auth.sign_in("ann", "s3cret-pass", ACCOUNTS, client="10.5.0.2").user is not None


def test_unknown_names_cost_the_same_check(private_home: Path, monkeypatch) -> None:
    checked = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda pw, h: checked.append(h) or real(pw, h))
    assert auth.authenticate("nobody", "s3cret-pass", ACCOUNTS) is None
    assert checked == [auth._DUMMY_HASH]


def test_roles() -> None:
    staff, analyst = auth.User("s", "staff"), auth.User("a", "analyst")
    assert (
        staff.can("score") and staff.can("override") and not staff.can("train") and not staff.can("compare")
    )
    assert analyst.can("train") and analyst.can("compare") and analyst.can("score")


def test_access_mode() -> None:
    assert auth.access_mode("127.0.0.1", {}) == "local"
    assert auth.access_mode("0.0.0.0", {}) == "refuse"
    assert auth.access_mode("", {}) == "refuse"
    assert auth.access_mode("0.0.0.0", {"a": {}}) == "login"


def test_users_cli_writes_only_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a-long-password\n"))
    assert main(["users", "add", "carol", "--role", "analyst", "--password-stdin", "--file", str(users)]) == 0
    data = json.loads(users.read_text())
    assert data["users"]["carol"]["role"] == "analyst"
    assert "a-long-password" not in users.read_text()
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    assert auth.verify_password("a-long-password", data["users"]["carol"]["hash"])
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    assert main(["users", "add", "dave", "--password-stdin", "--file", str(users)]) == 2


def test_accounts_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCREENING_USERS", f"eve:staff:{auth.hash_password('pw-for-eve')}")
    accounts = auth.load_accounts(tmp_path / "none.json")
    assert accounts["eve"]["role"] == "staff"
