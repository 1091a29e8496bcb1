"""Model versions on disk: immutable, signed bundles, and one live version an analyst chooses.

Layout::

    <models_dir>/registry.json                 live version + who moved it, when and why
    <models_dir>/<variant>/<version>/          one immutable bundle per training run
        manifest.json      sha256 of every other file + HMAC over them (the signature)
        meta.json          the model card (core.card.ModelCard)
        network.npz        the network as NumPy arrays (what serving reads; no pickle)
        preprocessor.json  the fitted preprocessing as plain JSON (no pickle); versions saved before
                           2026-11-28 have preprocessor.joblib, unpickled only after verification
        model.keras        the same network for Keras users (never read when serving)
        history.json, test_predictions.parquet, background.parquet, training_names.parquet

Trust: the signing key is ``$SCREENING_SECRET_KEY`` or ``$SCREENING_HOME/secret.key`` (0600,
created only by training), never a file inside or beside a models folder, so a folder copied in
from elsewhere cannot bring its own key. Loading checks the manifest's HMAC, then every file's
sha256, before reading anything else. A version id ends in a hash of the bundle's content, so a
changed bundle can never claim an existing version.

Saves and recoveries hold a cross-process lock; a save is written to a temporary folder and
renamed into place, so a crash never leaves half a version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from core import config
from core.card import ModelCard
from core.errors import BadRequest, BundleError, VersionMissing
from core.network import NETWORK_FILE, FastScorer, Network

__all__ = ["Bundle", "BundleError"]

MANIFEST = "manifest.json"
META = "meta.json"
REGISTRY = "registry.json"
LOCK = ".lock"
BUNDLE_FILES = (
    META,
    NETWORK_FILE,
    "preprocessor.json",
    "preprocessor.joblib",  # versions saved before 2026-11-28 (a pickle, read only once verified)
    "model.keras",
    "history.json",
    "test_predictions.parquet",
    "background.parquet",
    "training_names.parquet",
    "reference.json",  # the monitoring reference profile (core.monitoring), versions from 2026-11-27 on
    "trained_rows.parquet",  # fingerprints of the rows the served network learned from (2026-12-03 on)
)
REQUIRED_FILES = (META, NETWORK_FILE, "history.json")
PREPROCESSOR_FILES = ("preprocessor.json", "preprocessor.joblib")  # a bundle needs one of them
STALE_TMP_S = 3600.0
SCORE_BATCH = 100_000


# -- the key --------------------------------------------------------------------------------
def key_path() -> Path:
    return config.home() / "secret.key"


def signing_key(create: bool = False) -> bytes:
    """The installation's signing key: ``$SCREENING_SECRET_KEY``, else ``$SCREENING_HOME/secret.key``.

    Only training passes ``create=True``; loading never creates a key, and never looks for one
    next to the models it is given.
    """
    env = os.environ.get("SCREENING_SECRET_KEY")
    if env:
        return hashlib.sha256(env.encode()).digest()
    path = key_path()
    if not path.exists():
        if not create:
            raise BundleError(
                f"No signing key at {path} (or in SCREENING_SECRET_KEY): models cannot be verified. "
                "Train here with: python -m core train"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret-{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # atomic create-if-absent: concurrent first runs agree
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(files: dict[str, str]) -> str:
    """Hash of a bundle's content: every file's digest except the card (which names the version)."""
    text = "\n".join(f"{name} {digest}" for name, digest in sorted(files.items()) if name != META)
    return hashlib.sha256(text.encode()).hexdigest()


def _signature(key: bytes, version: str, files: dict[str, str]) -> str:
    payload = json.dumps({"version": version, "files": dict(sorted(files.items()))}, sort_keys=True)
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


# -- locking and clean-up ---------------------------------------------------------------------
@contextlib.contextmanager
def models_lock(models_dir: Path) -> Iterator[None]:
    """Exclusive cross-process lock for saves, migrations, recoveries and registry changes."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / LOCK, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def clean_stale(models_dir: Path, older_than: float = STALE_TMP_S) -> list[Path]:
    """Remove ``.tmp-*`` folders that killed saves left behind (only old ones: a save holds the
    lock while it writes, and this runs under the same lock)."""
    removed = []
    now = time.time()
    for tmp in [*models_dir.glob(".tmp-*"), *models_dir.glob("*/.tmp-*")]:
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime >= older_than:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
    return removed


# -- the loaded model ------------------------------------------------------------------------
@dataclass
class Bundle:
    """A verified, ready-to-score model version. Read-only: it is shared between sessions."""

    card: ModelCard
    path: Path
    history: dict
    pipeline: object
    network: Network
    digests: dict[str, str] = field(default_factory=dict)  # file -> sha256, from the verified manifest

    def read_signed(self, name: str) -> bytes:
        """A bundle file's bytes, checked against the verified manifest as they are read: a file
        swapped on disk after the bundle was loaded is refused, never parsed."""
        data = (self.path / name).read_bytes() if name in self.digests else None
        if data is None or hashlib.sha256(data).hexdigest() != self.digests[name]:
            raise BundleError(
                f"Model version {self.path.name}: {name} is not the file that was signed; it was not read."
            )
        return data

    def _signed_parquet(self, name: str) -> pd.DataFrame:
        import io

        return pd.read_parquet(io.BytesIO(self.read_signed(name)))

    @property
    def variant(self) -> str:
        return self.card.variant

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def threshold(self) -> float:
        return float(self.card.threshold)

    @property
    def feature_fields(self) -> list[str]:
        return list(self.card.feature_fields)

    @property
    def source_fields(self) -> list[str]:
        return self.card.source_fields

    @property
    def known_values(self) -> dict[str, list[str]]:
        return self.card.known_values

    @property
    def ask_range(self) -> tuple[float, float] | None:
        return self.card.ask_range

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipeline.transform(df).astype(np.float32)

    @cached_property
    def _scorer(self) -> FastScorer:
        return FastScorer(self.pipeline, self.network)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Success probabilities for validated rows (NumPy forward pass, bounded batches)."""
        out = np.empty(len(df), dtype=np.float64)
        for start in range(0, len(df), SCORE_BATCH):
            rows = df.iloc[start : start + SCORE_BATCH]
            out[start : start + len(rows)] = self._scorer.predict(rows)
        return out

    def test_predictions(self) -> pd.DataFrame:
        """Held-out test rows' labels and predicted probabilities."""
        return self._signed_parquet("test_predictions.parquet")

    @cached_property
    def seen_names(self) -> set[str]:
        """Normalised names of the organisations the model was trained on (read once)."""
        return set(self._signed_parquet("training_names.parquet")["NAME"])

    def learned_from(self, rows: pd.DataFrame) -> np.ndarray | None:
        """Whether the served network learned from each validated row (the same application fields
        as a row it trained on); None for versions saved before their training rows were kept."""
        if self._trained_rows is None:
            return None
        from core.datasets import row_fingerprints

        return np.isin(row_fingerprints(rows), self._trained_rows)

    @cached_property
    def _trained_rows(self) -> np.ndarray | None:
        """The fingerprints of the rows the served network learned from (read once), or None."""
        if "trained_rows.parquet" not in self.digests:
            return None
        return np.sort(self._signed_parquet("trained_rows.parquet")["fingerprint"].to_numpy(dtype=np.int64))

    def is_seen(self, df: pd.DataFrame) -> np.ndarray:
        """Whether each row's organisation appeared in training (False when NAME is absent)."""
        from core.features import seen_mask

        return seen_mask(df, self.seen_names)

    def background(self) -> pd.DataFrame:
        """Seeded sample of training rows (attribution background)."""
        return self._signed_parquet("background.parquet")


# -- saving ----------------------------------------------------------------------------------
def save_bundle(
    models_dir: Path,
    variant: str,
    *,
    network: Network,
    model: object | None,
    pipeline: object,
    card: dict,
    history: dict,
    test_predictions: pd.DataFrame,
    background: pd.DataFrame,
    training_names: pd.Series,
    reference: object | None = None,
    trained_rows: np.ndarray | None = None,
) -> ModelCard:
    """Write a new immutable version of ``variant``; returns its card (with the version id)."""
    from core.features import preprocessor_to_json

    models_dir = Path(models_dir)
    key = signing_key(create=True)
    with models_lock(models_dir):
        clean_stale(models_dir)
        parent = models_dir / variant
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".tmp-{uuid.uuid4().hex[:10]}"
        tmp.mkdir()
        try:
            (tmp / NETWORK_FILE).write_bytes(network.to_bytes())
            if model is not None:
                model.save(tmp / "model.keras")
            (tmp / "preprocessor.json").write_text(preprocessor_to_json(pipeline))
            (tmp / "history.json").write_text(json.dumps(history))
            test_predictions.to_parquet(tmp / "test_predictions.parquet", index=False)
            background.to_parquet(tmp / "background.parquet", index=False)
            pd.DataFrame({"NAME": training_names}).to_parquet(tmp / "training_names.parquet", index=False)
            if reference is not None:  # the monitoring profile (core.monitoring.Reference)
                (tmp / "reference.json").write_text(reference.to_json())
            if trained_rows is not None:  # core.datasets.row_fingerprints of the served network's rows
                pd.DataFrame({"fingerprint": np.asarray(trained_rows, dtype=np.int64)}).to_parquet(
                    tmp / "trained_rows.parquet", index=False
                )
            files = {p.name: file_sha256(p) for p in tmp.iterdir()}
            digest = content_hash(files)
            created = datetime.fromisoformat(card["created"])
            version = f"{variant}-{created:%Y%m%d%H%M%S}-{digest[:12]}"
            final_card = ModelCard.from_dict({**card, "version": version, "content_hash": digest})
            _write_signed(tmp, final_card, files, key)
            final = parent / version
            if final.exists():  # the very same content saved twice: keep the first
                return read_card(final)
            tmp.rename(final)
            return final_card
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _write_signed(folder: Path, card: ModelCard, files: dict[str, str], key: bytes) -> None:
    (folder / META).write_text(card.to_json())
    files = {**files, META: file_sha256(folder / META)}
    manifest = {"format": 2, "version": card.version, "files": files}
    manifest["signature"] = _signature(key, card.version, files)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


# -- verifying and reading ---------------------------------------------------------------------
def _verify(path: Path, key: bytes, *, every_file: bool) -> dict:
    """Check the manifest's signature and the files' digests; return the manifest.

    ``every_file=False`` checks the signature and the card only (listings); loading checks all.
    """
    label = f"{path.parent.name}/{path.name}"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = dict(manifest["files"])
        version = str(manifest["version"])
        signature = str(manifest["signature"])
    except FileNotFoundError:
        raise BundleError(f"Model version {label} has no manifest; it will not be loaded.") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise BundleError(
            f"Model version {label} has an unreadable manifest; it will not be loaded."
        ) from None
    if not hmac.compare_digest(_signature(key, version, files), signature):
        raise BundleError(
            f"Model version {label} is not signed by this installation (or was changed since); "
            "it will not be loaded."
        )
    if version != path.name:
        raise BundleError(f"Model version {label} claims to be {version}; it will not be loaded.")
    missing = [name for name in REQUIRED_FILES if name not in files]
    if not any(name in files for name in PREPROCESSOR_FILES):
        missing.append(" or ".join(PREPROCESSOR_FILES))
    if missing:
        raise BundleError(f"Model version {label} lacks {', '.join(missing)}; it will not be loaded.")
    if not version.endswith(content_hash(files)[:12]):
        raise BundleError(f"Model version {label} does not match its content hash; it will not be loaded.")
    for name in files if every_file else [META]:
        file = path / name
        if not file.is_file():
            raise BundleError(f"Model version {label} is damaged: {name} is missing.")
        if file_sha256(file) != files[name]:
            raise BundleError(f"Model version {label} is damaged: {name} does not match its signed checksum.")
    return manifest


def read_card(path: Path, key: bytes | None = None) -> ModelCard:
    """A version's card after checking its signature (cheap: the network is not read)."""
    _verify(path, key or signing_key(), every_file=False)
    try:
        card = ModelCard.from_json((path / META).read_text())
    except (OSError, ValueError, TypeError) as err:
        raise BundleError(
            f"Model version {path.name} has an unreadable card ({type(err).__name__})."
        ) from None
    if card.version != path.name:
        raise BundleError(f"Model version {path.name}'s card names another version; it will not be loaded.")
    return card


def _version_dirs(models_dir: Path) -> list[Path]:
    if not models_dir.is_dir():
        return []
    return sorted(
        version
        for variant in models_dir.iterdir()
        if variant.is_dir() and not variant.name.startswith(".")
        for version in variant.iterdir()
        if version.is_dir() and not version.name.startswith(".")
    )


def list_versions(
    models_dir: Path | None = None, every_file: bool = False
) -> tuple[dict[str, ModelCard], dict[str, str]]:
    """Every version's card (variants in declaration order, newest first), and for each version
    that fails verification the reason, keyed by its folder. ``every_file`` checks every file's
    digest (as loading does); by default only the signature and the card are checked."""
    from core.variants import VARIANTS

    models_dir = Path(models_dir or config.models_dir())
    migrate(models_dir)
    cards: list[ModelCard] = []
    errors: dict[str, str] = {}
    dirs = _version_dirs(models_dir)
    if not dirs:
        return {}, {}
    try:
        key = signing_key()
    except BundleError as err:
        return {}, {"key": str(err)}
    for path in dirs:
        try:
            if every_file:
                _verify(path, key, every_file=True)
            cards.append(read_card(path, key))
        except BundleError as err:
            errors[f"{path.parent.name}/{path.name}"] = str(err)
    order = {name: i for i, name in enumerate(VARIANTS)}
    cards.sort(key=lambda c: c.created, reverse=True)
    cards.sort(key=lambda c: order.get(c.variant, len(order)))
    return {c.version: c for c in cards}, errors


def version_path(models_dir: Path, version: str) -> Path:
    """The folder of a version id (or of the version migrated from an old id)."""
    variant = version.split("-", 1)[0] if "-" in version else version
    direct = models_dir / variant / version
    if direct.is_dir() and not version.startswith("."):
        return direct
    for path in _version_dirs(models_dir):  # an id from before migration
        with contextlib.suppress(OSError, ValueError):
            if json.loads((path / META).read_text()).get("migrated_from") == version:
                return path
    raise VersionMissing(
        f"No model version {version} in {models_dir}. List them with: python -m core models list"
    )


def load_bundle(models_dir: Path | None, version: str) -> Bundle:
    """Verify a version as a whole, then load it; raise BundleError saying what is wrong."""
    models_dir = Path(models_dir or config.models_dir())
    migrate(models_dir)
    path = version_path(models_dir, version)
    manifest = _verify(path, signing_key(), every_file=True)
    # every file is parsed from bytes checked against the signed manifest as they are read, so a file
    # swapped between the verification and the read is refused too
    signed = Bundle(None, path, {}, None, None, dict(manifest["files"]))  # type: ignore[arg-type]
    meta = signed.read_signed(META)
    network_bytes = signed.read_signed(NETWORK_FILE)
    as_json = "preprocessor.json" in signed.digests
    pipeline_bytes = signed.read_signed("preprocessor.json" if as_json else "preprocessor.joblib")
    history_bytes = signed.read_signed("history.json")
    try:
        card = ModelCard.from_json(meta.decode("utf-8"))
        network = Network.from_bytes(network_bytes)
        pipeline = _read_preprocessor(pipeline_bytes, as_json)
        history = json.loads(history_bytes)
    except Exception as err:  # any decoding failure of a signed file: report, never serve
        raise BundleError(f"Model version {path.name} could not be read ({type(err).__name__}).") from None
    return Bundle(card, path, history, pipeline, network, signed.digests)


def _read_preprocessor(blob: bytes, as_json: bool) -> object:
    """The fitted preprocessing from its verified bytes: JSON, or the pickle of an older version
    (signed by this installation and checked before this is called)."""
    if as_json:
        from core.features import preprocessor_from_json

        return preprocessor_from_json(blob)
    import io

    import joblib

    return joblib.load(io.BytesIO(blob))


# -- the live version ------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryEvent:
    """One change of the live version."""

    action: str  # promote | rollback | first-training
    version: str
    previous: str | None
    user: str
    reason: str
    at: str


def _read_registry(models_dir: Path) -> dict:
    path = models_dir / REGISTRY
    if not path.exists():
        return {"live": None, "events": []}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "events" not in data:
            raise ValueError("not a registry")
        return data
    except (OSError, ValueError) as err:
        raise BundleError(
            f"The live-model record {path} is unreadable ({type(err).__name__}); it was kept as it is. "
            "Restore it from a backup or promote a version again after moving it aside."
        ) from None


def _write_registry(models_dir: Path, data: dict) -> None:
    path = models_dir / REGISTRY
    tmp = path.with_name(f".registry-{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def live_version(models_dir: Path | None = None) -> str | None:
    return _read_registry(Path(models_dir or config.models_dir())).get("live")


def registry_events(models_dir: Path | None = None) -> list[RegistryEvent]:
    """Every change of the live version, oldest first."""
    data = _read_registry(Path(models_dir or config.models_dir()))
    return [RegistryEvent(**e) for e in data["events"]]


def _move_live(models_dir: Path, action: str, version: str, user: str, reason: str) -> RegistryEvent:
    data = _read_registry(models_dir)
    event = RegistryEvent(
        action, version, data.get("live"), user, reason, datetime.now(UTC).isoformat(timespec="seconds")
    )
    data["live"] = version
    data["events"].append(event.__dict__)
    _write_registry(models_dir, data)
    return event


def promote(models_dir: Path | None, version: str, user: str, reason: str) -> RegistryEvent:
    """Make a verified version live; needs a reason; recorded with who and when."""
    models_dir = Path(models_dir or config.models_dir())
    if not reason or not reason.strip():
        raise BadRequest("Promotion needs a reason.")
    path = version_path(models_dir, version)
    _verify(path, signing_key(), every_file=True)
    with models_lock(models_dir):
        if _read_registry(models_dir).get("live") == path.name:
            raise BadRequest(f"{path.name} is already the live model.")
        return _move_live(models_dir, "promote", path.name, user, reason.strip())


def rollback(models_dir: Path | None, user: str, reason: str) -> RegistryEvent:
    """Return to the version that was live before the current one."""
    models_dir = Path(models_dir or config.models_dir())
    if not reason or not reason.strip():
        raise BadRequest("Rollback needs a reason.")
    with models_lock(models_dir):
        data = _read_registry(models_dir)
        live = data.get("live")
        previous = next(
            (e["previous"] for e in reversed(data["events"]) if e["version"] == live and e["previous"]), None
        )
        if previous is None:
            raise BadRequest("There is no earlier live version to roll back to.")
        path = version_path(models_dir, previous)
        _verify(path, signing_key(), every_file=True)
        return _move_live(models_dir, "rollback", path.name, user, reason.strip())


def ensure_live(models_dir: Path, candidates: list[ModelCard]) -> RegistryEvent | None:
    """When nothing is live yet, make the best validated of ``candidates`` live (first training)."""
    if not candidates:
        return None
    with models_lock(models_dir):
        if _read_registry(models_dir).get("live"):
            return None
        best = max(candidates, key=lambda c: c.validation_accuracy)
        return _move_live(
            models_dir, "first-training", best.version, "system",
            "No live model yet: the best validated version of the first training run.",
        )  # fmt: skip


def remove_version(models_dir: Path | None, version: str, used_by_batches: set[str]) -> Path:
    """Delete a version that is not live and scored no recorded batch."""
    models_dir = Path(models_dir or config.models_dir())
    path = version_path(models_dir, version)
    with models_lock(models_dir):
        data = _read_registry(models_dir)
        if data.get("live") == path.name:
            raise BadRequest(f"{path.name} is the live model; promote another version before removing it.")
        card_from = (
            json.loads((path / META).read_text()).get("migrated_from") if (path / META).exists() else None
        )
        if path.name in used_by_batches or (card_from and card_from in used_by_batches):
            raise BadRequest(f"{path.name} scored recorded batches; it is kept so they can be re-scored.")
        trash = path.parent / f".tmp-removed-{uuid.uuid4().hex[:8]}"
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return path


def resolve_version(models_dir: Path | None, variant: str | None = None, version: str | None = None) -> str:
    """The version to use: the one given, the newest of a variant, or the live one."""
    models_dir = Path(models_dir or config.models_dir())
    if version:
        return version_path(models_dir, version).name
    if variant:
        cards, _ = list_versions(models_dir)
        mine = [c for c in cards.values() if c.variant == variant]
        if not mine:
            raise BundleError(f"No trained version of '{variant}'. Train it with: python -m core train")
        return max(mine, key=lambda c: c.created).version
    live = live_version(models_dir)
    if not live:
        raise BundleError("No live model yet. Train one with: python -m core train")
    return live


# -- migration from one bundle per variant folder ------------------------------------------
def migrate(models_dir: Path) -> list[str]:
    """Turn bundles of the old layout (``<variant>/meta.json``) into versions, without retraining.

    Each old bundle is checked the old way (file checksums and the preprocessor's HMAC with this
    installation's key) before it is converted; the network is read once with Keras and stored
    as NumPy arrays; the new version records the old id in ``migrated_from``. When nothing is
    live, the best validated migrated version becomes live.
    """
    if not models_dir.is_dir() or not any(models_dir.glob("*/meta.json")):
        return []
    created: list[ModelCard] = []
    with models_lock(models_dir):
        for old in sorted(models_dir.glob("*/meta.json")):
            card = _migrate_one(old.parent)
            if card is not None:
                created.append(card)
    ensure_live(models_dir, created)
    return [c.version for c in created]


def _migrate_one(folder: Path) -> ModelCard | None:
    import keras

    try:
        meta = json.loads((folder / META).read_text())
        key = signing_key()
    except (OSError, ValueError, BundleError):
        return None  # listed as damaged by whoever asks for it; never deleted
    for name, digest in meta.get("files", {}).items():
        if not (folder / name).is_file() or file_sha256(folder / name) != digest:
            return None
    blob = (folder / "preprocessor.joblib").read_bytes()
    expected = hmac.new(key, blob, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(meta.get("preprocessor_hmac", ""))):
        return None
    model = keras.models.load_model(folder / "model.keras", safe_mode=True, compile=False)
    tmp = folder / f".tmp-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        (tmp / NETWORK_FILE).write_bytes(Network.from_model(model).to_bytes())
        for name in BUNDLE_FILES:
            if name not in (META, NETWORK_FILE) and (folder / name).exists():
                shutil.copy2(folder / name, tmp / name)
        files = {p.name: file_sha256(p) for p in tmp.iterdir()}
        digest = content_hash(files)
        created = datetime.fromisoformat(meta.get("created") or datetime.now(UTC).isoformat())
        version = f"{meta.get('variant', folder.name)}-{created:%Y%m%d%H%M%S}-{digest[:12]}"
        old = {k: v for k, v in meta.items() if k not in ("files", "preprocessor_hmac")}
        card = ModelCard.from_dict(
            {**old, "variant": meta.get("variant", folder.name), "version": version,
             "content_hash": digest, "migrated_from": meta.get("version")}
        )  # fmt: skip
        _write_signed(tmp, card, files, key)
        if not (folder / version).exists():
            tmp.rename(folder / version)
        for name in [*BUNDLE_FILES, "meta.json"]:
            (folder / name).unlink(missing_ok=True)
        return card
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
