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


def test_throttle_grows_and_resets() -> None:
    t = auth.Throttle()
    assert t.delay("bob") == 0
    delays = []
    for _ in range(6):
        t.failed("bob")
        delays.append(t.delay("bob"))
    assert delays == sorted(delays) and delays[0] > 0 and delays[-1] == auth.MAX_DELAY_S
    t.succeeded("bob")
    assert t.delay("bob") == 0


def test_authenticate_sleeps_after_failures() -> None:
    accounts = {"ann": {"role": "staff", "hash": auth.hash_password("s3cret-pass")}}
    slept: list[float] = []
    auth.THROTTLE.succeeded("ann")
    assert auth.authenticate("ann", "nope", accounts, sleep=slept.append) is None
    assert auth.authenticate("ann", "nope", accounts, sleep=slept.append) is None
    user = auth.authenticate("ann", "s3cret-pass", accounts, sleep=slept.append)
    assert user == auth.User("ann", "staff")
    assert slept[0] == 0 and slept[1] > 0 and slept[2] > slept[1]
    assert auth.authenticate("nobody", "s3cret-pass", accounts, sleep=slept.append) is None


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
