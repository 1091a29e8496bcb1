"""The HTTP middleware (core/security.py) without a server: headers, Host refusal, module preload."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest

from core.security import RESULT_MODULES, SecurityHeaders, module_preload


def _static(tmp_path: Path, names: list[str]) -> Path:
    js = tmp_path / "static" / "js"
    js.mkdir(parents=True)
    for name in names:
        (js / name).write_text("export {};")
    return tmp_path


def test_module_preload_names_only_the_result_modules_of_the_build(tmp_path: Path) -> None:
    static = _static(
        tmp_path,
        ["DataFrame.-f9-1zS0.js", "Metric.MSVuxtnf.js", "Other.abc.js", "DataFrame.-f9-1zS0.js.map",
         "index.DormvYxC.js", "Radio.x.y.js", "axios.b99skj9n.js"],
    )  # fmt: skip
    assert module_preload(static) == (
        b"<static/js/DataFrame.-f9-1zS0.js>; rel=modulepreload, "
        b"<static/js/Metric.MSVuxtnf.js>; rel=modulepreload, "
        b"<static/js/axios.b99skj9n.js>; rel=modulepreload"
    )
    assert module_preload(tmp_path / "nowhere") == b""


def test_the_installed_streamlit_build_has_every_result_module() -> None:
    """After a Streamlit upgrade renames a module, the preload would quietly stop: this fails then."""
    import importlib.util

    static = Path(importlib.util.find_spec("streamlit").origin).parent / "static"
    header = module_preload(static).decode()
    paths = re.findall(r"<([^<>]+)>; rel=modulepreload", header)
    assert {path.split("/")[-1].split(".")[0] for path in paths} == set(RESULT_MODULES)


def _call(middleware: SecurityHeaders, content_type: bytes, host: bytes = b"localhost:8501") -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": "/", "headers": [(b"host", host)]}
    _run(middleware(scope, receive, send))
    return sent


def _run(coroutine: object) -> None:
    """Run a coroutine to the end in a thread of its own (the browser tests' Playwright keeps an event
    loop running in the main thread, where asyncio.run refuses); its exception is raised here."""
    failure: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if failure:
        raise failure[0]


async def _app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", scope["ct"])]})
    await send({"type": "http.response.body", "body": b"x"})


@pytest.mark.parametrize(("content_type", "linked"), [(b"text/html; charset=utf-8", True),
                                                      (b"application/javascript", False)])  # fmt: skip
def test_the_preload_link_goes_on_html_pages_only(content_type: bytes, linked: bool) -> None:
    async def app(scope, receive, send) -> None:
        await _app({**scope, "ct": content_type}, receive, send)

    start = _call(SecurityHeaders(app, preload=b"<static/js/A.1.js>; rel=modulepreload"), content_type)[0]
    headers = dict(start["headers"])
    assert headers[b"x-frame-options"] == b"SAMEORIGIN"
    assert headers.get(b"link") == (b"<static/js/A.1.js>; rel=modulepreload" if linked else None)


def test_a_foreign_host_gets_421_and_no_page() -> None:
    async def app(scope, receive, send) -> None:  # must never run
        raise AssertionError("the app answered a foreign Host")

    sent = _call(SecurityHeaders(app, preload=b"<x>; rel=modulepreload"), b"text/html", host=b"evil.example")
    assert sent[0]["status"] == 421 and b"link" not in dict(sent[0]["headers"])
