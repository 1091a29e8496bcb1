"""Bundles round-trip exactly, report damage by name, and save atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import registry
from core.registry import BundleError, list_metas, load_all, load_bundle
from core.variants import VARIANTS


@pytest.fixture
def models_copy(models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained bundles (and the signing key) to damage."""
    shutil.copytree(models_dir.parent, tmp_path / "home", ignore=shutil.ignore_patterns("*.db", "*.csv"))
    return tmp_path / "home" / "models"


def test_every_variant_has_a_complete_bundle(models_dir: Path) -> None:
    metas, errors = list_metas(models_dir)
    assert not errors and list(metas) == list(VARIANTS)
    for name, meta in metas.items():
        files = {p.name for p in (models_dir / name).iterdir()}
        assert {"model.keras", "preprocessor.joblib", "meta.json", "history.json"} <= files
        for key in (
            "variant",
            "version",
            "created",
            "training_data",
            "feature_fields",
            "threshold",
            "metrics",
            "library_versions",
        ):
            assert key in meta
        assert meta["training_data"]["rows"] > 0 and len(meta["training_data"]["sha256"]) == 64
        test = meta["metrics"]["test"]
        for key in ("accuracy", "roc_auc", "log_loss", "brier", "precision", "recall", "f1", "confusion"):
            assert key in test
        assert {"roc", "pr", "calibration"} <= set(test["curves"])
        history = json.loads((models_dir / name / "history.json").read_text())
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(history)


def test_round_trip_gives_identical_predictions(models_dir: Path, clean_df: pd.DataFrame) -> None:
    rows = clean_df.drop(columns=["IS_SUCCESSFUL"]).iloc[:200]
    for name in ("baseline", "tuned"):
        a = load_bundle(models_dir, name).predict_proba(rows)
        b = load_bundle(models_dir, name).predict_proba(rows)
        np.testing.assert_array_equal(a, b)
    # and equal to what the model predicted before it was saved (baseline: no final refit)
    stored = load_bundle(models_dir, "baseline").test_predictions()
    bundle = load_bundle(models_dir, "baseline")
    test_rows = stored.drop(columns=["row", "success_probability", "seen_organisation"])
    np.testing.assert_allclose(bundle.predict_proba(test_rows), stored["success_probability"], atol=1e-6)


def test_truncated_model_is_reported_by_name_and_others_still_load(models_copy: Path) -> None:
    path = models_copy / "l2" / "model.keras"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BundleError, match=r"'l2' is damaged: model\.keras"):
        load_bundle(models_copy, "l2")
    bundles, errors = load_all(models_copy)
    assert set(errors) == {"l2"} and set(bundles) == set(VARIANTS) - {"l2"}


def test_broken_meta_is_reported(models_copy: Path) -> None:
    (models_copy / "baseline" / "meta.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"'baseline' has an unreadable meta\.json"):
        load_bundle(models_copy, "baseline")
    metas, errors = list_metas(models_copy)
    assert "baseline" in errors and "tuned" in metas


def test_foreign_preprocessor_is_never_unpickled(models_copy: Path) -> None:
    """A pickle swapped in with a matching checksum still fails the installation's signature."""
    bundle_dir = models_copy / "batchnorm"
    evil = bundle_dir / "preprocessor.joblib"
    evil.write_bytes(b"\x80\x04\x95" + b"not ours" * 10)
    meta = json.loads((bundle_dir / "meta.json").read_text())
    meta["files"]["preprocessor.joblib"] = registry.file_sha256(evil)
    (bundle_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="not written by this installation"):
        load_bundle(models_copy, "batchnorm")


def test_crash_during_save_keeps_previous_bundle(models_copy: Path, monkeypatch) -> None:
    before = load_bundle(models_copy, "baseline")
    version = before.version

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(RuntimeError):
        registry.save_bundle(
            models_copy,
            "baseline",
            model=before.model,
            pipeline=before.pipeline,
            meta=before.meta,
            history=before.history,
            test_predictions=pd.DataFrame(),
            background=pd.DataFrame(),
            training_names=pd.Series([], dtype=object),
        )
    assert load_bundle(models_copy, "baseline").version == version
    assert not list(models_copy.glob(".tmp-*"))


def test_interrupted_swap_is_recovered(models_copy: Path) -> None:
    """Killed between the two renames: the old bundle is put back on next listing."""
    (models_copy / "lr_schedule").rename(models_copy / ".old-lr_schedule-deadbeef")
    metas, _ = list_metas(models_copy)
    assert "lr_schedule" in metas
    assert load_bundle(models_copy, "lr_schedule").variant == "lr_schedule"


def test_missing_model_says_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="python -m core train"):
        load_bundle(tmp_path, "tuned")


def test_training_killed_mid_save_leaves_previous_bundle(models_copy: Path, tmp_path: Path) -> None:
    """Kill `python -m core train` the moment it starts writing: the old bundle still serves."""
    import signal
    import subprocess
    import sys
    import time

    from core.config import PROJECT_ROOT
    from core.synthetic import generate

    before = load_bundle(models_copy, "baseline").version
    history = tmp_path / "h.csv"
    generate(600, random_state=4).to_csv(history, index=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "train",
            "--data",
            str(history),
            "--models-dir",
            str(models_copy),
            "--variants",
            "baseline",
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if list(models_copy.glob(".tmp-baseline-*")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(30)
    bundle = load_bundle(models_copy, "baseline")  # loads: either the old one or a complete new one
    if proc.returncode == -signal.SIGKILL:
        assert bundle.version == before
    metas, errors = list_metas(models_copy)
    assert not errors and "baseline" in metas
