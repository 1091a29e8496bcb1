"""HTTP hardening for the dashboard's server (ASGI middleware; no streamlit import).

* Every response says the page may not be framed by another site, not sniffed, and sends no
  referrer to other origins.
* A request (HTTP or WebSocket) whose ``Host`` is not allowed is refused with 421, so a
  DNS-rebinding page cannot drive the app from a foreign name. Allowed: ``SCREENING_ALLOWED_HOSTS``
  (comma-separated) when set, else localhost names only; a reverse proxy deployment sets it to
  its public name.
* The page itself (the HTML document) may also name, in a ``Link`` header, the browser modules the
  Score page's results need (``module_preload``), so the browser loads them while the page is idle
  instead of after the first upload.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


# Streamlit's front-end modules that the Score page's results draw (tables, metrics, the decision's
# radio and slider, download buttons, progress) and that it uploads with (axios). Streamlit builds
# each as <Name>.<content hash>.js and fetches it on first use: the first upload after a page load
# waited for them (bench/app.py).
RESULT_MODULES = ("DataFrame", "Metric", "Radio", "Slider", "DownloadButton", "Progress", "ProgressBar",
                  "Spinner", "axios")  # fmt: skip
_MODULE_FILE = re.compile(r"(?P<name>[A-Za-z]+)\.[A-Za-z0-9_-]+\.js")


def module_preload(static_dir: Path, names: tuple[str, ...] = RESULT_MODULES) -> bytes:
    """A ``Link`` header value naming those modules of a Streamlit build (``static_dir``: its
    ``static`` folder) for ``rel=modulepreload``; empty when the build has none of them. The paths are
    relative to the page, so a server under a base path works too."""
    js = Path(static_dir) / "static" / "js"
    found = sorted(
        f.name
        for f in (js.iterdir() if js.is_dir() else ())
        if (m := _MODULE_FILE.fullmatch(f.name)) and m["name"] in names
    )
    return ", ".join(f"<static/js/{name}>; rel=modulepreload" for name in found).encode("ascii")


class SecurityHeaders:
    """ASGI middleware: Host allow-list and security headers on every HTTP response; the ``preload``
    Link header (``module_preload``) on HTML documents."""

    def __init__(self, app, preload: bytes = b"") -> None:
        self.app = app
        self.allowed = allowed_hosts()
        self.preload = preload

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
                headers += [(k, v) for k, v in HEADERS if k not in names]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if self.preload and content_type.startswith(b"text/html") and b"link" not in names:
                    headers.append((b"link", self.preload))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
