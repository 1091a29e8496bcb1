"""Staff accounts: scrypt password hashes, constant-time checks, throttled failures, roles.

Accounts live in a JSON file under the data directory (``python -m core users add NAME``
writes one) or in ``$SCREENING_USERS`` as ``name:role:hash`` entries separated by ``;``.
Only hashes are stored. For production single sign-on, Streamlit's built-in OIDC login
(``st.login``) can replace this gate (see README).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core import config

ROLES = ("staff", "analyst")
# What each role may do; analysts can do everything staff can.
PERMISSIONS = {
    "staff": {"score", "override", "history", "explain"},
    "analyst": {"score", "override", "history", "explain", "compare", "train"},
}
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_DELAY_S = 8.0
LOCAL_ADDRESSES = {"127.0.0.1", "localhost", "::1"}


def hash_password(password: str) -> str:
    """A memory-hard scrypt hash with a random salt, as one self-describing string."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of a password against a stored hash (False for malformed hashes)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), dklen=len(expected), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, set())


def load_accounts(path: Path | None = None) -> dict[str, dict]:
    """Accounts from the users file and the environment: {name: {'role', 'hash'}}."""
    accounts: dict[str, dict] = {}
    path = path or config.users_file()
    if path.exists():
        data = json.loads(path.read_text() or "{}")
        accounts.update(data.get("users", {}))
    for entry in filter(None, os.environ.get("SCREENING_USERS", "").split(";")):
        name, role, hashed = entry.strip().split(":", 2)
        accounts[name] = {"role": role, "hash": hashed}
    return accounts


def add_user(name: str, password: str, role: str = "staff", path: Path | None = None) -> None:
    """Create or replace an account (atomic file write, 0600)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not name or ":" in name or ";" in name:
        raise ValueError("user names must be non-empty and contain no ':' or ';'")
    if len(password) < 8:
        raise ValueError("passwords need at least 8 characters")
    path = path or config.users_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text() or "{}") if path.exists() else {}
    data.setdefault("users", {})[name] = {"role": role, "hash": hash_password(password)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


class Throttle:
    """Growing delay after failed logins, per user name (in this server process)."""

    def __init__(self) -> None:
        self._fails: dict[str, int] = {}
        self._lock = threading.Lock()

    def delay(self, name: str) -> float:
        with self._lock:
            fails = self._fails.get(name.lower(), 0)
        return 0.0 if fails == 0 else min(0.5 * 2 ** (fails - 1), MAX_DELAY_S)

    def failed(self, name: str) -> None:
        with self._lock:
            self._fails[name.lower()] = self._fails.get(name.lower(), 0) + 1

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop(name.lower(), None)


THROTTLE = Throttle()
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def authenticate(
    name: str, password: str, accounts: dict[str, dict] | None = None, sleep=time.sleep
) -> User | None:
    """Check credentials after the throttle's delay; unknown users cost the same as known ones."""
    accounts = load_accounts() if accounts is None else accounts
    sleep(THROTTLE.delay(name))
    account = accounts.get(name)
    ok = verify_password(password, account["hash"] if account else _DUMMY_HASH) and account is not None
    if not ok:
        THROTTLE.failed(name)
        return None
    THROTTLE.succeeded(name)
    return User(name, account.get("role", "staff"))


def access_mode(server_address: str | None, accounts: dict[str, dict]) -> str:
    """'login' when accounts exist; 'local' (no login, single user) when none exist and the
    server listens on localhost only; 'refuse' when none exist and it listens beyond it."""
    if accounts:
        return "login"
    if (server_address or "").strip() in LOCAL_ADDRESSES:
        return "local"
    return "refuse"
