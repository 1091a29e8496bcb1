"""The dashboard as an ASGI app with security headers: ``streamlit run serve.py`` (``make run`` does).

It serves ``app.py`` unchanged and adds, on every HTTP response, headers that stop other sites
from framing it (``Content-Security-Policy: frame-ancestors 'self'`` and ``X-Frame-Options``),
plus ``X-Content-Type-Options``, ``Referrer-Policy`` and a refusal of requests whose Host is not
one of ``server.allowedHosts`` (DNS rebinding). See README, "Security model".
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware

from core.security import SecurityHeaders

app = st.App("app.py", middleware=[Middleware(SecurityHeaders)])
