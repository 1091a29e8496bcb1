"""Helpers every page shares: the current user and model, cached resources, friendly errors.

Pages only collect input, call ``core`` and render; anything with logic lives in core.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from core import config
from core.auth import User
from core.registry import Bundle, BundleError, list_metas, load_bundle
from core.schema import FileError

log = logging.getLogger("screening")


def models_dir() -> Path:
    return config.models_dir()


def current_user() -> User:
    return st.session_state.get("user") or User("local", "analyst")


def require(permission: str) -> None:
    """Stop the page with a clear message when the user's role lacks a permission."""
    user = current_user()
    if not user.can(permission):
        st.error(f"Your role ({user.role}) cannot {permission}. Ask an analyst account for access.")
        st.stop()


def model_page(title: str, permission: str) -> str:
    """Common head of pages that need a model: role check, title, the sidebar's variant."""
    require(permission)
    st.title(title)
    variant = st.session_state.get("variant")
    if not variant:
        st.warning("No trained model yet. Train one on the Train page or with `python -m core train`.")
        st.stop()
    return variant


def metas() -> tuple[dict[str, dict], dict[str, str]]:
    """Bundle metadata, always fresh so new training shows at once: re-read only when a
    bundle folder or its meta.json changed (a page asks several times per run)."""
    root = models_dir()
    stamp = (
        tuple(
            (p.name, (p / "meta.json").stat().st_mtime_ns if (p / "meta.json").exists() else None)
            for p in sorted(root.iterdir())
        )
        if root.is_dir()
        else ()
    )
    return _metas(str(root), stamp)


@st.cache_data(max_entries=8, show_spinner=False)
def _metas(models: str, stamp: tuple) -> tuple[dict[str, dict], dict[str, str]]:
    return list_metas(Path(models))


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load(models: str, variant: str, version: str) -> Bundle:
    # version is part of the key: a retrained bundle is a new cache entry. Never mutate it.
    return load_bundle(Path(models), variant)


def get_bundle(variant: str) -> Bundle:
    """The loaded model for a variant, shared read-only across sessions."""
    all_metas, errors = metas()
    if variant in errors:
        raise BundleError(errors[variant])
    if variant not in all_metas:
        raise BundleError(
            f"No trained model '{variant}'. Train it on the Train page or with python -m core train."
        )
    return _load(str(models_dir()), variant, all_metas[variant]["version"])


@st.cache_resource(show_spinner="Preparing explanations…", max_entries=16)
def _explainer(models: str, variant: str, version: str):
    from core.explain import FieldExplainer

    return FieldExplainer(_load(models, variant, version))


def get_explainer(variant: str):
    bundle = get_bundle(variant)
    return _explainer(str(models_dir()), variant, bundle.version)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Show user errors as one short message; log anything else, never show a traceback."""
    try:
        yield
    except (FileError, BundleError, ValueError) as err:
        st.error(str(err))
    except Exception:  # last line of defence; st.stop()/st.rerun() are BaseExceptions and pass through
        log.error("unexpected error: %s", traceback.format_exc())
        st.error("Something went wrong while doing that. Try again; if it keeps happening, tell an analyst.")


def download_name(stem: str, suffix: str = "csv") -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:80] + f".{suffix}"


def csv_download(label: str, data: bytes, stem: str, key: str, where: object = st) -> None:
    """A CSV download button with a safe file name (``where``: a column or st itself)."""
    where.download_button(label, data, file_name=download_name(stem), mime="text/csv", key=key)
