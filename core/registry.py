"""Model bundles on disk: preprocessing + Keras model + metadata + history, saved together.

Layout: ``<models_dir>/<variant>/`` holding ``model.keras``, ``preprocessor.joblib``,
``meta.json``, ``history.json``, ``test_predictions.parquet`` and ``background.parquet``.

Safety: a bundle is written to a temporary folder and swapped in with renames, so a crash
leaves the previous bundle serving. ``meta.json`` records the sha256 of every file and an
HMAC (keyed by a secret under the data directory) of the pickled preprocessor: a file the
app did not write is never unpickled, and a damaged bundle is reported by name while the
other variants keep working. Keras models load with ``safe_mode=True``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from core import config

BUNDLE_FILES = ("model.keras", "preprocessor.joblib", "meta.json", "history.json")
DATA_FILES = ("test_predictions.parquet", "background.parquet", "training_names.parquet")


class BundleError(RuntimeError):
    """A model bundle is missing or damaged; the message names it and says what is wrong."""


def _secret_key(models_dir: Path) -> bytes:
    """Per-installation signing key, created on first use (0600)."""
    path = models_dir.parent / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        os.chmod(tmp, 0o600)
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


@dataclass
class Bundle:
    """A loaded, ready-to-score model. Treat as read-only: it is shared between sessions."""

    variant: str
    path: Path
    meta: dict
    history: dict
    pipeline: object
    model: object

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    @property
    def feature_fields(self) -> list[str]:
        return list(self.meta["feature_fields"])

    @property
    def source_fields(self) -> list[str]:
        """The application-form fields this model reads, in form order."""
        return list(dict.fromkeys(self.meta["feature_fields"]))

    @property
    def known_values(self) -> dict[str, list[str]]:
        return self.meta.get("known_values", {})

    @property
    def ask_range(self) -> tuple[float, float] | None:
        r = self.meta.get("ask_range")
        return (float(r[0]), float(r[1])) if r else None

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipeline.transform(df).astype(np.float32)

    @cached_property
    def _scorer(self) -> object:
        from core.training import fast_scorer

        return fast_scorer(self.pipeline, self.model)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Success probabilities for validated rows (no refitting, bounded batches)."""
        from core.training import predict_proba

        return predict_proba(self.pipeline, self.model, df, scorer=self._scorer)

    def test_predictions(self) -> pd.DataFrame:
        """Held-out test rows' labels and predicted probabilities (for Compare)."""
        return pd.read_parquet(self.path / "test_predictions.parquet")

    @cached_property
    def seen_names(self) -> set[str]:
        """Normalised names of the organisations the model was trained on (read once)."""
        return set(pd.read_parquet(self.path / "training_names.parquet")["NAME"])

    def is_seen(self, df: pd.DataFrame) -> np.ndarray:
        """Whether each row's organisation appeared in training (False when NAME is absent)."""
        from core.features import seen_mask

        return seen_mask(df, self.seen_names)

    def background(self) -> pd.DataFrame:
        """Seeded sample of training rows (attribution background)."""
        return pd.read_parquet(self.path / "background.parquet")


def save_bundle(
    models_dir: Path,
    variant: str,
    *,
    model: object,
    pipeline: object,
    meta: dict,
    history: dict,
    test_predictions: pd.DataFrame,
    background: pd.DataFrame,
    training_names: pd.Series,
) -> Path:
    """Write a bundle atomically; the previous bundle serves until the final rename."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    key = _secret_key(models_dir)
    tmp = models_dir / f".tmp-{variant}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        model.save(tmp / "model.keras")
        joblib.dump(pipeline, tmp / "preprocessor.joblib")
        (tmp / "history.json").write_text(json.dumps(history))
        test_predictions.to_parquet(tmp / "test_predictions.parquet", index=False)
        background.to_parquet(tmp / "background.parquet", index=False)
        pd.DataFrame({"NAME": training_names}).to_parquet(tmp / "training_names.parquet", index=False)
        files = {
            name: file_sha256(tmp / name)
            for name in ("model.keras", "preprocessor.joblib", "history.json", *DATA_FILES)
        }
        signature = hmac.new(key, (tmp / "preprocessor.joblib").read_bytes(), hashlib.sha256).hexdigest()
        meta = {**meta, "files": files, "preprocessor_hmac": signature}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        for path in tmp.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        final = models_dir / variant
        trash = models_dir / f".old-{variant}-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(trash)
        tmp.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _json_default(value: object) -> object:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _recover(models_dir: Path, variant: str) -> None:
    """A crash between the two renames of a save leaves the old bundle aside: put it back."""
    final = models_dir / variant
    if final.exists():
        return
    olds = sorted(models_dir.glob(f".old-{variant}-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        olds[-1].rename(final)


def variant_names(models_dir: Path | None = None) -> list[str]:
    """Variants that have a bundle folder (damaged or not), in declaration order first."""
    from core.variants import VARIANTS

    models_dir = Path(models_dir or config.models_dir())
    if not models_dir.exists():
        return []
    for old in models_dir.glob(".old-*"):
        _recover(models_dir, old.name[5:].rsplit("-", 1)[0])
    found = [p.name for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    order = {name: i for i, name in enumerate(VARIANTS)}
    return sorted(found, key=lambda n: (order.get(n, len(order)), n))


def read_meta(models_dir: Path | None, variant: str) -> dict:
    """A bundle's metadata without loading the network (cheap, for tables and sidebars)."""
    path = Path(models_dir or config.models_dir()) / variant / "meta.json"
    if not path.exists():
        raise BundleError(f"Model '{variant}' is missing its meta.json; retrain it.")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BundleError(f"Model '{variant}' has an unreadable meta.json ({err}); retrain it.") from None
    if not isinstance(meta, dict) or "version" not in meta:
        raise BundleError(f"Model '{variant}' has an incomplete meta.json; retrain it.")
    return meta


def list_metas(models_dir: Path | None = None) -> tuple[dict[str, dict], dict[str, str]]:
    """All bundles' metadata, and for damaged ones the reason, keyed by variant."""
    metas: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for variant in variant_names(models_dir):
        try:
            metas[variant] = read_meta(models_dir, variant)
        except BundleError as err:
            errors[variant] = str(err)
    return metas, errors


def load_bundle(models_dir: Path | None, variant: str) -> Bundle:
    """Load and verify one bundle; raise BundleError saying what is wrong with it.

    A bundle written before a file was added to the format is still served: only the
    files its own meta.json lists are checked.
    """
    import keras

    models_dir = Path(models_dir or config.models_dir())
    path = models_dir / variant
    if not path.is_dir():
        raise BundleError(
            f"No trained model '{variant}' in {models_dir}. Train it with: python -m core train"
        )
    meta = read_meta(models_dir, variant)
    for name, digest in meta.get("files", {}).items():
        file = path / name
        if not file.exists():
            raise BundleError(f"Model '{variant}' is damaged: {name} is missing. Retrain it.")
        if file_sha256(file) != digest:
            raise BundleError(
                f"Model '{variant}' is damaged: {name} does not match its checksum. Retrain it."
            )
    blob = (path / "preprocessor.joblib").read_bytes()
    expected = hmac.new(_secret_key(models_dir), blob, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(meta.get("preprocessor_hmac", ""))):
        raise BundleError(
            f"Model '{variant}' was not written by this installation (signature mismatch); "
            "it will not be loaded. Retrain it here."
        )
    try:
        pipeline = joblib.load(path / "preprocessor.joblib")
        model = keras.models.load_model(path / "model.keras", safe_mode=True, compile=False)
        history = json.loads((path / "history.json").read_text())
    except Exception as err:  # any decoding failure means a damaged bundle
        raise BundleError(
            f"Model '{variant}' could not be loaded ({type(err).__name__}). Retrain it."
        ) from None
    return Bundle(variant, path, meta, history, pipeline, model)


def load_all(models_dir: Path | None = None) -> tuple[dict[str, Bundle], dict[str, str]]:
    """Every loadable bundle, plus the reason for each one that is not."""
    bundles: dict[str, Bundle] = {}
    errors: dict[str, str] = {}
    for variant in variant_names(models_dir):
        try:
            bundles[variant] = load_bundle(models_dir, variant)
        except BundleError as err:
            errors[variant] = str(err)
    return bundles, errors


def best_variant(models_dir: Path | None = None) -> str:
    """The healthy variant with the best validation accuracy (the CLI/app default)."""
    return best_of(list_metas(models_dir)[0])


def best_of(metas: dict[str, dict]) -> str:
    """``best_variant`` over metadata already read."""
    if not metas:
        raise BundleError("No trained models yet. Train them with: python -m core train")

    def score(item: tuple[str, dict]) -> float:
        val = item[1].get("metrics", {}).get("validation", {})
        return float(val.get("accuracy") or 0.0)

    return max(metas.items(), key=score)[0]
