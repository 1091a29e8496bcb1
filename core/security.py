"""HTTP hardening for the dashboard's server (ASGI middleware; no streamlit import).

* Every response says the page may not be framed by another site, not sniffed, and sends no
  referrer to other origins.
* A request (HTTP or WebSocket) whose ``Host`` is not allowed is refused with 421, so a
  DNS-rebinding page cannot drive the app from a foreign name. Allowed: ``SCREENING_ALLOWED_HOSTS``
  (comma-separated) when set, else localhost names only; a reverse proxy deployment sets it to
  its public name.
"""

from __future__ import annotations

import os

HEADERS = [
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def allowed_hosts() -> set[str]:
    env = os.environ.get("SCREENING_ALLOWED_HOSTS", "")
    names = [h.strip().lower() for h in env.split(",") if h.strip()]
    return set(names or LOCAL_HOSTS)


def host_allowed(host: str | None, allowed: set[str]) -> bool:
    if not host:
        return False
    host = host.strip().lower()
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    if name.startswith("[") and "]" in name:
        name = name[: name.index("]") + 1]
    return "*" in allowed or name in allowed or name.strip("[]") in allowed


class SecurityHeaders:
    """ASGI middleware: Host allow-list and security headers on every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app
        self.allowed = allowed_hosts()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self.allowed):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "http.response.start", "status": 421,
                        "headers": [(b"content-type", b"text/plain"), *HEADERS]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"Misdirected request: unknown host.\n"})
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                message = {**message, "headers": headers + [(k, v) for k, v in HEADERS if k not in names]}
            await send(message)

        await self.app(scope, receive, with_headers)
