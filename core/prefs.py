"""Small per-user preferences (the last budget a person typed), one JSON file under the data directory."""

from __future__ import annotations

import contextlib
import json
import os
import uuid

from core import config


def _path():
    return config.home() / "preferences.json"


def get(user: str, key: str, default: object = None) -> object:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(_path().read_text()).get(user, {}).get(key, default)
    return default


def put(user: str, key: str, value: object) -> None:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
    data.setdefault(user, {})[key] = value
    tmp = path.with_name(f".preferences-{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    tmp.replace(path)
