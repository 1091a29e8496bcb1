"""Paths and settings, all derived from the project root or the environment.

Every piece of runtime state (models, database, caches) lives under one data
directory so a deployment can move or wipe it in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
SAMPLE_APPLICANTS = ASSETS_DIR / "sample_applicants.csv"
SHARED_TRAIN_CSV = PROJECT_ROOT.parent / "shared" / "data" / "charity_train.csv"


def home() -> Path:
    """The data directory: ``$SCREENING_HOME`` or ``./var`` under the project root."""
    env = os.environ.get("SCREENING_HOME")
    return Path(env).expanduser().resolve() if env else PROJECT_ROOT / "var"


def models_dir() -> Path:
    """Where model bundles live (one folder per variant)."""
    return home() / "models"


def database_url() -> str:
    """SQLAlchemy URL of the batch record; SQLite under the data directory by default."""
    return os.environ.get("SCREENING_DB_URL") or f"sqlite:///{home() / 'screening.db'}"


def users_file() -> Path:
    """Staff accounts (password hashes only)."""
    env = os.environ.get("SCREENING_USERS_FILE")
    return Path(env) if env else home() / "users.json"


def train_csv() -> Path | None:
    """A real training history when configured via ``$SCREENING_TRAIN_CSV``, else None (synthetic)."""
    env = os.environ.get("SCREENING_TRAIN_CSV")
    return Path(env) if env else None
