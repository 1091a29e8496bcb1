"""The dashboard as an ASGI app with security headers: ``streamlit run serve.py`` (``make run`` does).

It serves ``app.py`` unchanged and adds, on every HTTP response, headers that stop other sites
from framing it (``Content-Security-Policy: frame-ancestors 'self'`` and ``X-Frame-Options``),
plus ``X-Content-Type-Options``, ``Referrer-Policy`` and a refusal of requests whose Host is not
one of ``server.allowedHosts`` (DNS rebinding). See README, "Security model".
"""

from __future__ import annotations

import contextlib
import ctypes

import streamlit as st
from starlette.middleware import Middleware

from core.security import SecurityHeaders

# A long-running server should give memory back after a large upload: a fixed mmap threshold keeps
# glibc from growing it (large arrays then return to the system when freed), and a low trim threshold
# and two arenas keep freed heap from piling up (bench/memory.py measures it).
with contextlib.suppress(OSError, AttributeError):
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    libc.mallopt(-8, 2)  # M_ARENA_MAX

app = st.App("app.py", middleware=[Middleware(SecurityHeaders)])
