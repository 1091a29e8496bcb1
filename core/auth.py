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
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from core import config
from core.errors import BadRequest, StorageError

log = logging.getLogger("screening.auth")
ROLES = ("staff", "analyst")
# What each role may do; analysts can do everything staff can.
PERMISSIONS = {
    "staff": {"score", "override", "history", "explain"},
    "analyst": {"score", "override", "history", "explain", "compare", "train", "promote"},
}
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
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
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    if not name or ":" in name or ";" in name or not name.isprintable():
        raise BadRequest("user names must be non-empty, printable and contain no ':' or ';'")
    if len(password) < 8:
        raise BadRequest("passwords need at least 8 characters")
    path = path or config.users_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text() or "{}") if path.exists() else {}
    data.setdefault("users", {})[name] = {"role": role, "hash": hash_password(password)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


# -- guessing resistance -------------------------------------------------------------------------
# Failures are counted per account name, per client address and for the whole server, in a file
# under the data directory shared by every session and process, so neither parallel sessions nor a
# restart resets them. Each attempt is counted as a failure *before* its password is checked (and
# cleared on success), so parallel guesses cannot slip past the count. Past the free failures the
# name or address is locked out, exponentially longer each time, up to LOCK_MAX_S.
ACCOUNT_FREE_FAILS = 5
CLIENT_FREE_FAILS = 20
LOCK_BASE_S = 30.0
LOCK_MAX_S = 3600.0
GLOBAL_WINDOW_S = 60.0
GLOBAL_MAX_FAILS = 60  # failures per window across all names and clients before everyone waits
FORGET_AFTER_S = 24 * 3600.0
MAX_TRACKED = 10_000
AUDIT_EVENTS = ("success", "failure", "locked", "unlock", "logout", "expired")


def _state_path() -> Path:
    return config.home() / "auth_state.json"


def audit_path() -> Path:
    return config.home() / "auth_audit.jsonl"


class _StateLock:
    """Exclusive cross-process lock around the throttle state."""

    def __enter__(self) -> _StateLock:
        import fcntl

        home = config.home()
        home.mkdir(parents=True, exist_ok=True)
        self._fh = open(home / ".auth.lock", "a+")
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        try:
            self.state = json.loads(_state_path().read_text())
        except FileNotFoundError:
            self.state = {}
        except (OSError, ValueError) as err:
            self._fh.close()
            log.error("sign-in throttle state unreadable: %s", type(err).__name__)
            raise StorageError(
                f"The sign-in lockout record {_state_path()} is damaged or unreadable, so nobody can be "
                "signed in safely (lockouts would be lost). It was kept as it is; an administrator can "
                "move it aside to start the lockouts afresh."
            ) from None
        if not isinstance(self.state, dict):
            self._fh.close()
            raise StorageError(
                f"The sign-in lockout record {_state_path()} is damaged (not a JSON object). It was kept "
                "as it is; an administrator can move it aside to start the lockouts afresh."
            )
        for key in ("accounts", "clients"):
            self.state.setdefault(key, {})
        self.state.setdefault("recent", [])
        return self

    def save(self) -> None:
        path = _state_path()
        tmp = path.with_name(f".auth_state-{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.state, fh)
        tmp.replace(path)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        self._fh.close()


def _lock_seconds(fails: int, free: int) -> float:
    return 0.0 if fails < free else min(LOCK_BASE_S * 2 ** (fails - free), LOCK_MAX_S)


def _prune(state: dict, now: float) -> None:
    state["recent"] = [t for t in state["recent"] if now - t < GLOBAL_WINDOW_S]
    for key in ("accounts", "clients"):
        table = state[key]
        for name in [n for n, e in table.items() if now - e.get("last", 0) > FORGET_AFTER_S]:
            del table[name]
        if len(table) > MAX_TRACKED:
            for name in sorted(table, key=lambda n: table[n].get("last", 0))[: len(table) - MAX_TRACKED]:
                del table[name]


def _clean(text: str, limit: int = 120) -> str:
    return "".join(ch for ch in str(text) if ch.isprintable())[:limit]


def audit(event: str, user: str, client: str = "", detail: str = "") -> None:
    """Append one line to the sign-in audit log (who, when, from where; never a password)."""
    from datetime import UTC, datetime

    line = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "event": event,
        "user": _clean(user),
        "client": _clean(client, 64),
    }
    if detail:
        line["detail"] = _clean(detail, 200)
    path = audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def read_audit(limit: int = 200) -> list[dict]:
    """The newest audit lines, newest last."""
    try:
        lines = audit_path().read_text().splitlines()[-limit:]
    except OSError:
        return []
    return [json.loads(x) for x in lines if x.strip()]


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: the user, or the message to show."""

    user: User | None
    message: str = ""


def _wait_text(seconds: float) -> str:
    return f"{int(seconds) + 1} seconds" if seconds < 120 else f"{int(seconds // 60) + 1} minutes"


def sign_in(
    name: str,
    password: str,
    accounts: dict[str, dict] | None = None,
    client: str = "unknown",
    now: float | None = None,
) -> SignIn:
    """Check credentials under the shared throttle; unknown names cost the same as known ones."""
    accounts = load_accounts() if accounts is None else accounts
    key, client = name.strip().lower()[:120], _clean(client or "unknown", 64)
    with _StateLock() as lock:
        # the clock is read under the lock: an attempt that read it earlier but got the lock later
        # must not see a later attempt's time as a lockout
        now = time.time() if now is None else now
        state = lock.state
        _prune(state, now)
        acc = state["accounts"].setdefault(key, {"fails": 0, "until": 0.0, "last": now})
        cli = state["clients"].setdefault(client, {"fails": 0, "until": 0.0, "last": now})
        wait = max(acc["until"] - now, cli["until"] - now)
        if len(state["recent"]) >= GLOBAL_MAX_FAILS:
            wait = max(wait, GLOBAL_WINDOW_S - (now - state["recent"][0]))
        if wait > 0:
            lock.save()
            audit("locked", name, client)
            return SignIn(None, f"Too many failed sign-ins. Try again in {_wait_text(wait)}.")
        # counted as a failure until the password proves otherwise
        for entry, free in ((acc, ACCOUNT_FREE_FAILS), (cli, CLIENT_FREE_FAILS)):
            entry["fails"] += 1
            entry["last"] = now
            seconds = _lock_seconds(entry["fails"], free)
            entry["until"] = now + seconds if seconds else 0.0
        state["recent"].append(now)
        lock.save()
    account = accounts.get(name)
    ok = verify_password(password, account["hash"] if account else _DUMMY_HASH) and account is not None
    if not ok:
        audit("failure", name, client)
        return SignIn(None, "Wrong user name or password.")
    with _StateLock() as lock:
        lock.state["accounts"].pop(key, None)
        cli = lock.state["clients"].get(client)
        if cli:
            cli["fails"], cli["until"] = max(cli["fails"] - 1, 0), 0.0
        if lock.state["recent"]:
            lock.state["recent"].pop()
        lock.save()
    audit("success", name, client)
    return SignIn(User(name, account.get("role", "staff")))


def unlock(name: str, by: str) -> bool:
    """Clear an account's failures and lockout (an analyst's action, audited). True if it was tracked."""
    key = name.strip().lower()
    with _StateLock() as lock:
        found = lock.state["accounts"].pop(key, None) is not None
        lock.save()
    audit("unlock", name, detail=f"by {by}")
    return found


def lockouts(now: float | None = None) -> dict[str, float]:
    """Accounts locked out now, with the seconds left."""
    now = time.time() if now is None else now
    with _StateLock() as lock:
        return {n: e["until"] - now for n, e in lock.state["accounts"].items() if e["until"] > now}


_DUMMY_HASH = hash_password(secrets.token_hex(8))


def authenticate(name: str, password: str, accounts: dict[str, dict] | None = None, client: str = "unknown"):
    """The user for good credentials, else None (see ``sign_in`` for the message)."""
    return sign_in(name, password, accounts, client).user


def access_mode(server_address: str | None, accounts: dict[str, dict]) -> str:
    """'login' when accounts exist; 'local' (no login, single user) when none exist and the
    server listens on localhost only; 'refuse' when none exist and it listens beyond it."""
    if accounts:
        return "login"
    if (server_address or "").strip() in LOCAL_ADDRESSES:
        return "local"
    return "refuse"
