"""The dashboard as an ASGI app with security headers: ``streamlit run serve.py`` (``make run`` does).

It serves ``app.py`` unchanged and adds, on every HTTP response, headers that stop other sites
from framing it (``Content-Security-Policy: frame-ancestors 'self'`` and ``X-Frame-Options``),
plus ``X-Content-Type-Options``, ``Referrer-Policy`` and a refusal of requests whose Host is not
one of ``server.allowedHosts`` (DNS rebinding). See README, "Security model". The HTML page also
carries a ``Link: rel=modulepreload`` header for the front-end modules of the Score page's results
(``core.security.module_preload``).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from core.security import SecurityHeaders, module_preload

# A long-running server should give memory back after a large upload. `make run` starts it with
# PYTHONMALLOC=malloc: Python's own small-object allocator keeps a whole arena alive for any object
# still in it, so the few long-lived objects made while a large upload was scored pinned that
# upload's arenas (the server grew about 10 MB with every 200,000-row upload and never gave it back);
# from glibc, the trim after each upload returns it. The variable only counts at interpreter start.
# Here: a fixed mmap threshold keeps glibc from growing it (large arrays then return to the system
# when freed), and a low trim threshold and two arenas keep freed heap from piling up
# (bench/memory.py measures it).
with contextlib.suppress(OSError, AttributeError):
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    libc.mallopt(-8, 2)  # M_ARENA_MAX

# One BLAS thread per server process. OpenBLAS otherwise wakes a second thread for every matrix product
# of an explanation, and it spins while it waits for the next: per 10,000-row upload the server used
# about 1.5 s of CPU instead of about 0.95 s, taken from the sessions and browser beside it (two cores
# here; on a bigger machine concurrent sessions are the parallelism). Training (TensorFlow) has its own
# thread pool and is not affected.
with contextlib.suppress(ImportError):
    import numpy  # noqa: F401  (loads OpenBLAS, so that the limit finds it)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")

# Before the first element of the first page, Streamlit checks once whether it runs in a Python REPL
# (to print a "use streamlit run" warning) by taking inspect.stack(), which resolves the real path of
# every imported module's file: 3-4 s of CPU on the first page view here (bench/app.py). This file
# is only ever served by `streamlit run`, where that warning cannot apply, so the check is marked done.
with contextlib.suppress(ImportError, AttributeError):
    import streamlit.delta_generator as _delta_generator

    if hasattr(_delta_generator, "_use_warning_has_been_displayed"):
        _delta_generator._use_warning_has_been_displayed = True


def _preload() -> None:
    """Import the serving code at server start, in the background: pandas and pyarrow, the batch
    workflow, the preprocessing, explanations, groups and charts (about 1.5 s; no scikit-learn or
    TensorFlow). Without it the first upload waited for those imports. A visitor who arrives in the
    very first seconds sees the first page a little later, as both compete for the one interpreter
    lock; one who arrives later gains both."""
    import core

    with contextlib.suppress(Exception):  # a page that needs a module it could not import says why
        core.import_serving_code()
        from core.batch import freeze_long_lived

        freeze_long_lived()  # the imports' objects: out of every later collection


threading.Thread(target=_preload, name="preload", daemon=True).start()

# the page names the modules its results need, so the browser has them before the first upload
preload = module_preload(Path(st.__file__).parent / "static")
app = st.App("app.py", middleware=[Middleware(SecurityHeaders, preload=preload)])
