"""Model versions: immutable, signed as a whole, verified before anything is read; one live version."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from core import registry
from core.config import PROJECT_ROOT
from core.errors import BadRequest, BundleError
from core.registry import list_versions, live_version, load_bundle
from core.synthetic import generate
from core.variants import VARIANTS
from tests.conftest import bundle_of, version_of


@pytest.fixture
def models_copy(home_copy: Path) -> Path:
    return home_copy / "models"


def test_every_variant_has_a_complete_signed_version(models_dir: Path) -> None:
    cards, errors = list_versions(models_dir)
    assert errors == {}
    assert [c.variant for c in cards.values()] == list(VARIANTS)
    for version, card in cards.items():
        folder = models_dir / card.variant / version
        files = {p.name for p in folder.iterdir()}
        assert (set(registry.BUNDLE_FILES) - {"preprocessor.joblib"}) | {registry.MANIFEST} == files
        assert version.startswith(f"{card.variant}-") and version.endswith(card.content_hash[:12])
        assert card.training_data.rows > 0 and len(card.training_data.sha256) == 64
        assert card.synthetic is True and card.schema_version == 2
        assert {"accuracy", "roc_auc", "log_loss", "brier", "precision", "recall", "f1", "confusion"} <= set(
            card.test
        )
        assert {"roc", "pr", "calibration"} <= set(card.test["curves"])
        history = json.loads((folder / "history.json").read_text())
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(history)


def test_first_training_made_the_best_validated_version_live(models_dir: Path) -> None:
    cards, _ = list_versions(models_dir)
    best = max(cards.values(), key=lambda c: c.validation_accuracy)
    assert live_version(models_dir) == best.version
    [event] = registry.registry_events(models_dir)
    assert (event.action, event.version, event.previous, event.user) == (
        "first-training",
        best.version,
        None,
        "system",
    )


def test_round_trip_gives_identical_predictions(models_dir: Path) -> None:
    # each saved version, loaded back from its files, predicts what the trained network predicted in
    # memory before the save (the stored test predictions), for a plain and a refitted variant
    for name in ("baseline", "tuned"):
        bundle = bundle_of(models_dir, name)
        stored = bundle.test_predictions()
        test_rows = stored.drop(columns=["row", "success_probability", "seen_organisation", "IS_SUCCESSFUL"])
        assert len(test_rows) > 100
        np.testing.assert_allclose(bundle.predict_proba(test_rows), stored["success_probability"], atol=1e-6)


def _edit(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)


def test_truncated_network_is_reported_by_name_and_others_still_load(models_copy: Path) -> None:
    version = version_of(models_copy, "l2")
    folder = models_copy / "l2" / version
    _edit(folder, "network.npz", (folder / "network.npz").read_bytes()[:100])
    with pytest.raises(BundleError, match=r"damaged: network\.npz does not match its signed checksum"):
        load_bundle(models_copy, version)
    for other in VARIANTS:
        if other != "l2":
            assert bundle_of(models_copy, other).variant == other


def test_edited_threshold_is_refused(models_copy: Path) -> None:
    version = version_of(models_copy, "tuned")
    folder = models_copy / "tuned" / version
    card = json.loads((folder / "meta.json").read_text())
    card["threshold"] = 0.0  # would recommend every applicant
    (folder / "meta.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match=r"meta\.json does not match its signed checksum"):
        load_bundle(models_copy, version)
    # fixing the checksum in the manifest does not help without the key
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["meta.json"] = registry.file_sha256(folder / "meta.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not signed by this installation"):
        load_bundle(models_copy, version)
    cards, errors = list_versions(models_copy)
    assert version not in cards and f"tuned/{version}" in errors


def test_swapped_network_is_refused(models_copy: Path) -> None:
    target = models_copy / "baseline" / version_of(models_copy, "baseline")
    donor = models_copy / "l2" / version_of(models_copy, "l2")
    shutil.copy(donor / "network.npz", target / "network.npz")
    with pytest.raises(BundleError, match=r"network\.npz does not match"):
        load_bundle(models_copy, target.name)


def test_a_file_swapped_after_loading_is_refused_when_it_is_read(models_copy: Path) -> None:
    from core.monitoring import reference_of

    version = version_of(models_copy, "tuned")
    bundle = load_bundle(models_copy, version)
    other = registry.version_path(models_copy, version_of(models_copy, "baseline"))
    for name in ("background.parquet", "training_names.parquet", "reference.json"):
        shutil.copy(other / name, bundle.path / name)
    with pytest.raises(BundleError, match=r"background\.parquet is not the file that was signed"):
        bundle.background()
    with pytest.raises(BundleError, match=r"training_names\.parquet is not the file that was signed"):
        _ = bundle.seen_names
    with pytest.raises(BundleError, match=r"reference\.json is not the file that was signed"):
        reference_of(bundle)


def test_resigned_tampered_bundle_cannot_claim_its_old_version(models_copy: Path) -> None:
    """Even someone holding the key cannot change a version's content and keep its id."""
    version = version_of(models_copy, "baseline")
    folder = models_copy / "baseline" / version
    shutil.copy(models_copy / "l2" / version_of(models_copy, "l2") / "network.npz", folder / "network.npz")
    files = {p.name: registry.file_sha256(p) for p in folder.iterdir() if p.name != "manifest.json"}
    key = registry.signing_key()
    manifest = {"format": 2, "version": version, "files": files}
    manifest["signature"] = registry._signature(key, version, files)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="does not match its content hash"):
        load_bundle(models_copy, version)


def test_models_folder_with_its_own_key_is_refused(models_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """A models folder from elsewhere, signed with a key it brings along, is never loaded."""
    foreign_home = tmp_path / "foreign"
    shutil.copytree(models_copy.parent, foreign_home)
    foreign_key = os.urandom(32)
    for folder in (foreign_home / "models").glob("*/*"):
        files = json.loads((folder / "manifest.json").read_text())["files"]
        manifest = {"format": 2, "version": folder.name, "files": files}
        manifest["signature"] = registry._signature(foreign_key, folder.name, files)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    for place in (foreign_home / "secret.key", foreign_home / "models" / "secret.key"):
        place.write_bytes(foreign_key)  # beside and inside the models folder
    version = version_of(models_copy, "tuned")
    with pytest.raises(BundleError, match="not signed by this installation"):
        load_bundle(foreign_home / "models", version)
    # and an installation without a key of its own refuses everything, creating none
    monkeypatch.setenv("SCREENING_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(BundleError, match="No signing key"):
        load_bundle(foreign_home / "models", version)
    assert not (tmp_path / "empty-home" / "secret.key").exists()


def test_key_from_the_environment(models_copy: Path, monkeypatch) -> None:
    version = version_of(models_copy, "baseline")
    monkeypatch.setenv("SCREENING_SECRET_KEY", "another installation's secret")
    with pytest.raises(BundleError, match="not signed by this installation"):
        load_bundle(models_copy, version)


def test_signing_key_file_is_private(models_dir: Path, screening_home: Path) -> None:
    assert (screening_home / "secret.key").stat().st_mode & 0o777 == 0o600


def test_crash_during_save_keeps_previous_versions(models_copy: Path, monkeypatch) -> None:
    before = bundle_of(models_copy, "baseline")
    listing = sorted(p.name for p in (models_copy / "baseline").iterdir())

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        registry.save_bundle(
            models_copy, "baseline", network=before.network, model=None, pipeline=before.pipeline,
            card=before.card.to_dict(), history=before.history, test_predictions=pd.DataFrame(),
            background=pd.DataFrame(), training_names=pd.Series([], dtype=object),
        )  # fmt: skip
    assert sorted(p.name for p in (models_copy / "baseline").iterdir()) == listing
    assert bundle_of(models_copy, "baseline").version == before.version


def _train_cli(models: Path, history: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--data", str(history), "--models-dir", str(models),
         "--variants", "baseline", "--max-epochs", "2", "--quiet", *extra],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def test_training_killed_mid_save_leaves_no_half_version(models_copy: Path, tmp_path: Path) -> None:
    """Kill `python -m core train` while it writes a version: the kill must land during the save, and
    the versions that existed all still load; the half-written folder is cleaned once it is stale."""
    history = tmp_path / "h.csv"
    generate(600, random_state=4).to_csv(history, index=False)
    before = {c.version for c in list_versions(models_copy)[0].values()}
    proc = _train_cli(models_copy, history)
    deadline = time.time() + 180
    killed_during_save = False
    while proc.poll() is None and time.time() < deadline:
        if list((models_copy / "baseline").glob(".tmp-*")):
            proc.send_signal(signal.SIGKILL)
            killed_during_save = True
            break
        time.sleep(0.002)
    proc.wait(30)
    assert killed_during_save and proc.returncode == -signal.SIGKILL
    cards, errors = list_versions(models_copy)
    assert errors == {} and set(cards) == before
    leftovers = list((models_copy / "baseline").glob(".tmp-*"))
    assert leftovers  # left by the killed process
    for path in leftovers:
        os.utime(path, (time.time() - 2 * registry.STALE_TMP_S,) * 2)
    assert sorted(registry.clean_stale(models_copy)) == sorted(leftovers)
    assert not list((models_copy / "baseline").glob(".tmp-*"))


def test_training_adds_a_version_and_never_changes_live(models_copy: Path, tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    generate(600, random_state=5).to_csv(history, index=False)
    live = live_version(models_copy)
    before = set(list_versions(models_copy)[0])
    proc = _train_cli(models_copy, history)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    new = set(list_versions(models_copy)[0]) - before
    assert len(new) == 1 and out.split() == list(new)
    assert live_version(models_copy) == live


def test_promote_rollback_and_their_record(models_copy: Path) -> None:
    live = live_version(models_copy)
    other = version_of(models_copy, "baseline")
    assert other != live
    with pytest.raises(BadRequest, match="needs a reason"):
        registry.promote(models_copy, other, "ana", "  ")
    registry.promote(models_copy, other, "ana", "better on first-time organisations")
    assert live_version(models_copy) == other
    with pytest.raises(BadRequest, match="already the live model"):
        registry.promote(models_copy, other, "ana", "again")
    registry.rollback(models_copy, "ana", "complaints from staff")
    assert live_version(models_copy) == live
    events = [
        (e.action, e.version, e.previous, e.user, e.reason) for e in registry.registry_events(models_copy)
    ]
    assert events[1:] == [
        ("promote", other, live, "ana", "better on first-time organisations"),
        ("rollback", live, other, "ana", "complaints from staff"),
    ]


def test_tampered_version_cannot_be_promoted(models_copy: Path) -> None:
    version = version_of(models_copy, "l2")
    _edit(models_copy / "l2" / version, "history.json", b"{}")
    with pytest.raises(BundleError, match=r"history\.json does not match"):
        registry.promote(models_copy, version, "ana", "try it")


def test_remove_refuses_live_and_recorded_versions(models_copy: Path) -> None:
    live = live_version(models_copy)
    with pytest.raises(BadRequest, match="is the live model"):
        registry.remove_version(models_copy, live, set())
    used = version_of(models_copy, "l2")
    with pytest.raises(BadRequest, match="scored recorded batches"):
        registry.remove_version(models_copy, used, {used})
    gone = version_of(models_copy, "batchnorm")
    registry.remove_version(models_copy, gone, {used})
    assert gone not in list_versions(models_copy)[0]
    with pytest.raises(BundleError, match="No model version"):
        load_bundle(models_copy, gone)


def _pickled_pipeline(pre: object, path: Path) -> None:
    """Write ``pre`` (a loaded version's preprocessing) as versions before the JSON format did: the
    fitted scikit-learn Pipeline, pickled, its encoder named core.features.FieldEncoder."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from core.fitting import BinaryAwareScaler, FieldEncoder

    source, scaled = pre.named_steps["encode"], pre.named_steps["scale"]
    enc = FieldEncoder(**source.get_params())
    for k, v in vars(source).items():
        if k.endswith("_"):
            setattr(enc, k, v)
    scaler = BinaryAwareScaler() if scaled.kind == "binary_aware" else StandardScaler()
    for k in ("mean_", "var_", "scale_", "n_features_in_", "n_samples_seen_", "binary_"):
        if hasattr(scaled, k):
            setattr(scaler, k, getattr(scaled, k))
    try:
        FieldEncoder.__module__ = "core.features"  # where the class lived then (it still resolves)
        joblib.dump(Pipeline([("encode", enc), ("scale", scaler)]), path)
    finally:
        FieldEncoder.__module__ = "core.fitting"
    assert b"core.features" in path.read_bytes() and b"FieldEncoder" in path.read_bytes()


def _to_old_layout(models: Path, variant: str) -> str:
    """Rewrite one version as the previous format: one bundle per variant folder, meta.json holding
    file checksums and an HMAC of the pickled preprocessor only."""
    version = version_of(models, variant)
    src = models / variant / version
    card = json.loads((src / "meta.json").read_text())
    old_id = f"{variant}-20250101000000-abc123"
    _pickled_pipeline(load_bundle(models, version).pipeline, models / variant / "preprocessor.joblib")
    for name in ("model.keras", "history.json", "test_predictions.parquet", "background.parquet",
                 "training_names.parquet"):  # fmt: skip
        shutil.copy(src / name, models / variant / name)
    files = {n: registry.file_sha256(models / variant / n) for n in ("model.keras", "preprocessor.joblib")}
    blob = (models / variant / "preprocessor.joblib").read_bytes()
    meta = {k: v for k, v in card.items() if k not in ("schema_version", "content_hash", "migrated_from")}
    signature = hmac.new(registry.signing_key(), blob, hashlib.sha256).hexdigest()
    meta.update(version=old_id, files=files, preprocessor_hmac=signature)
    (models / variant / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(src)
    return old_id


def test_old_layout_is_migrated_without_retraining(models_copy: Path, clean_df: pd.DataFrame) -> None:
    rows = clean_df.drop(columns=["IS_SUCCESSFUL"]).iloc[:100]
    expected = bundle_of(models_copy, "tuned").predict_proba(rows)
    for variant in VARIANTS:
        old_id = _to_old_layout(models_copy, variant)
    (models_copy / "registry.json").unlink()
    cards, errors = list_versions(models_copy)  # first use migrates
    assert errors == {} and sorted(c.variant for c in cards.values()) == sorted(VARIANTS)
    assert not list(models_copy.glob("*/meta.json"))
    tuned = next(c for c in cards.values() if c.variant == "tuned")
    assert tuned.migrated_from == old_id == "tuned-20250101000000-abc123"
    np.testing.assert_array_equal(load_bundle(models_copy, tuned.version).predict_proba(rows), expected)
    assert load_bundle(models_copy, tuned.migrated_from).version == tuned.version  # old ids still resolve
    assert live_version(models_copy) in cards


def test_a_version_saved_with_a_pickled_preprocessor_still_loads(models_copy: Path, clean_df) -> None:
    """Versions saved before the preprocessing became JSON carry preprocessor.joblib (signed): they
    load as before, unpickled only after the whole bundle is verified."""
    from core.card import ModelCard

    rows = clean_df.drop(columns=["IS_SUCCESSFUL"]).iloc[:100]
    version = version_of(models_copy, "tuned")
    src = models_copy / "tuned" / version
    current = load_bundle(models_copy, version)
    assert (src / "preprocessor.json").read_bytes().startswith(b'{"format":"screening-preprocessor/1"')
    tmp = models_copy / "tuned" / "rewrite"
    shutil.copytree(src, tmp)
    (tmp / "preprocessor.json").unlink()
    (tmp / registry.MANIFEST).unlink()
    _pickled_pipeline(current.pipeline, tmp / "preprocessor.joblib")
    files = {p.name: registry.file_sha256(p) for p in tmp.iterdir() if p.name != registry.META}
    digest = registry.content_hash(files)
    old = f"tuned-20261101000000-{digest[:12]}"
    card = ModelCard.from_dict({**current.card.to_dict(), "version": old, "content_hash": digest})
    registry._write_signed(tmp, card, files, registry.signing_key())
    tmp.rename(models_copy / "tuned" / old)
    loaded = load_bundle(models_copy, old)
    assert "preprocessor.joblib" in loaded.digests and "preprocessor.json" not in loaded.digests
    assert type(loaded.pipeline).__module__ == "sklearn.pipeline"  # the pickle itself, not the JSON
    np.testing.assert_array_equal(loaded.predict_proba(rows), current.predict_proba(rows))
    np.testing.assert_array_equal(loaded.transform(rows), current.transform(rows))


def test_old_bundle_with_a_bad_signature_is_not_migrated(models_copy: Path) -> None:
    _to_old_layout(models_copy, "baseline")
    meta = json.loads((models_copy / "baseline" / "meta.json").read_text())
    meta["preprocessor_hmac"] = "0" * 64
    (models_copy / "baseline" / "meta.json").write_text(json.dumps(meta))
    cards, _ = list_versions(models_copy)
    assert "baseline" not in {c.variant for c in cards.values()}
    assert (models_copy / "baseline" / "meta.json").exists()  # kept as it is, never deleted


def test_missing_model_says_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="python -m core train"):
        registry.resolve_version(tmp_path)
