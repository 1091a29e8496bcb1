"""Shared fixtures: tiny synthetic data and tiny trained bundles in a temporary home."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from core import config
from core.synthetic import generate

REAL_DATA = config.SHARED_TRAIN_CSV


@pytest.fixture(scope="session")
def synthetic_df() -> pd.DataFrame:
    return generate(1500, random_state=7)


@pytest.fixture(scope="session")
def clean_df(synthetic_df: pd.DataFrame) -> pd.DataFrame:
    """Validated, typed rows (what training and scoring see)."""
    from core.schema import validate

    return validate(synthetic_df.astype(str), need_target=True).accepted.reset_index(drop=True)


@pytest.fixture(scope="session", autouse=True)
def screening_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with every variant trained briefly on the synthetic demo data; it is the
    session's SCREENING_HOME (its signing key verifies the models), tests that need their own
    copy point SCREENING_HOME at it with monkeypatch."""
    from core.workflow import load_training_data, train_variants

    home = tmp_path_factory.mktemp("home")
    os.environ["SCREENING_HOME"] = str(home)
    os.environ.pop("SCREENING_SECRET_KEY", None)
    os.environ.pop("SCREENING_DB_URL", None)
    # the built-in demo data, as `make run` trains on, with few epochs
    train_variants(load_training_data(None), seed=0, models_dir=home / "models", max_epochs=4)
    return home


@pytest.fixture(scope="session")
def models_dir(screening_home: Path) -> Path:
    return screening_home / "models"


@pytest.fixture
def home_copy(screening_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained home (models + signing key) as SCREENING_HOME, to change freely."""
    import shutil

    dest = tmp_path / "home"
    shutil.copytree(screening_home, dest, ignore=shutil.ignore_patterns("*.db*", "backups", "auth_*"))
    monkeypatch.setenv("SCREENING_HOME", str(dest))
    return dest


def version_of(models_dir: Path, variant: str) -> str:
    """The newest version of a variant."""
    from core.registry import resolve_version

    return resolve_version(models_dir, variant=variant)


def bundle_of(models_dir: Path, variant: str):
    """The newest version of a variant, loaded."""
    from core.registry import load_bundle

    return load_bundle(models_dir, version_of(models_dir, variant))


def csv_bytes(frame: pd.DataFrame, **kwargs: object) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode("utf-8")


@pytest.fixture
def own_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private SQLite batch record for one test (SCREENING_DB_URL); its URL."""
    from core import storage

    url = f"sqlite:///{tmp_path / 'own.db'}"
    monkeypatch.setenv("SCREENING_DB_URL", url)
    storage.reset_engines()
    yield url
    storage.reset_engines()
