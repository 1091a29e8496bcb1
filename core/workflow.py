"""Training runs shared by the CLI and the app: train variants, save each as a new version.

Training never changes which version is live, except on an installation with no live version at
all, where the best validated version of the first run becomes live (so a fresh ``make run``
works). Only this module and ``core.training`` import TensorFlow.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core import config
from core.card import ModelCard
from core.datasets import (
    EVALUATION_RULE,
    TrainingData,
    evaluation_words,
    fixed_splits,
    load_training_data,
    row_fingerprints,
)
from core.evaluation import evaluate_grouped, evaluate_predictions
from core.features import frame_names, known_names, seen_mask
from core.monitoring import build_reference
from core.network import Network
from core.registry import ensure_live, save_bundle
from core.schema import TARGET
from core.training import (
    Progress,
    TrainedModel,
    fit_variant,
    predict_proba,
    refit_full,
)
from core.variants import VARIANTS, get_variant

__all__ = ["TrainingData", "load_training_data", "train_variants"]
BACKGROUND_ROWS = 100


def _library_versions() -> dict[str, str]:
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }


def train_variants(
    data: TrainingData,
    variants: list[str] | None = None,
    seed: int = 0,
    models_dir: Path | None = None,
    progress: Progress | None = None,
    grouped: bool = False,
    max_epochs: int | None = None,
) -> dict[str, ModelCard]:
    """Train, evaluate and save each variant as a new version; returns the cards by variant.

    ``max_epochs`` caps every variant's epochs (tests and quick demos).
    """
    models_dir = Path(models_dir or config.models_dir())
    names = variants or list(VARIANTS)
    specs = [get_variant(n) for n in names]
    frame = data.frame
    splits = fixed_splits(frame, seed)
    train, val, test = (frame.iloc[s] for s in (splits.train, splits.val, splits.test))
    learnable = frame.iloc[splits.served_on(refitted=True)]
    results: dict[str, dict] = {}
    for spec in specs:
        trained = fit_variant(spec, train, val, seed, progress, epochs=max_epochs)
        fitted_on, evaluated = train, trained
        if spec.refit_full:  # every row but the evaluation rows: those stay unseen by the served network
            trained = refit_full(trained, learnable, seed)
            fitted_on = learnable
        meta, test_frame = _describe(trained, data, train, val, test, seed, fitted_on, evaluated)
        if spec.refit_full:
            meta["final_fit"] = trained.extra["final_fit"]
            meta["train_seconds"] = round(trained.seconds, 2)
        if grouped:
            meta["metrics"]["grouped"] = evaluate_grouped(spec.name, frame, seed)
        reference = build_reference(
            fitted_on,
            trained.pipeline,
            test_frame["success_probability"].to_numpy(),
            rejected_share=data.report.n_rejected / max(data.report.n_input, 1),
            test_seen=test_frame["seen_organisation"].to_numpy(),
            test_outcomes=test_frame[TARGET].to_numpy(),
            test_names=frame_names(test_frame),
        )
        background = fitted_on.sample(min(BACKGROUND_ROWS, len(fitted_on)), random_state=seed)
        results[spec.name] = save_bundle(
            models_dir,
            spec.name,
            network=Network.from_model(trained.model),
            model=trained.model,
            pipeline=trained.pipeline,
            card=meta,
            history=trained.history,
            test_predictions=test_frame,
            background=background.drop(columns=[TARGET]).reset_index(drop=True),
            training_names=pd.Series(sorted(known_names(fitted_on)), dtype=object),
            reference=reference,
            trained_rows=row_fingerprints(fitted_on),
        )
    ensure_live(models_dir, list(results.values()))
    return results


def _model_facts(trained: TrainedModel) -> dict:
    """What the saved preprocessor and network are: must describe the model actually saved."""
    encoder = trained.pipeline.named_steps["encode"]
    return {
        "feature_fields": list(encoder.feature_fields_),
        "feature_names": list(encoder.feature_names_),
        "known_values": dict(encoder.seen_values_),
        "ask_range": list(encoder.ask_range_),
        "parameters": int(trained.model.count_params()),
    }


def _describe(
    trained: TrainedModel,
    data: TrainingData,
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    seed: int,
    fitted_on: pd.DataFrame,
    evaluated: TrainedModel,
) -> tuple[dict, pd.DataFrame]:
    """The card's facts of the network that will be served (``trained``, fitted on ``fitted_on``):
    test figures are its own predictions on the evaluation rows, which it never trained on.
    Validation figures are those of ``evaluated``, the network early stopping watched (a refitted
    network has trained on the validation rows)."""
    spec = trained.spec
    p_val = predict_proba(evaluated.pipeline, evaluated.model, val)
    p_test = predict_proba(trained.pipeline, trained.model, test)
    seen = seen_mask(test, known_names(fitted_on))
    threshold = 0.5
    created = datetime.now(UTC)
    meta = {
        "variant": spec.name,
        "label": spec.label,
        "description": spec.description,
        "version": "",  # the registry names it from the saved content
        "created": created.isoformat(timespec="seconds"),
        "seed": seed,
        "training_data": {
            "source": data.source,
            "synthetic": data.synthetic,
            "sha256": data.sha256,
            "rows": len(data.frame),
            "rejected_rows": data.report.n_rejected,
        },
        "splits": {"train": len(train), "validation": len(val), "test": len(test), "kind": "fixed-hash"},
        "evaluation": {
            **EVALUATION_RULE,
            "rows": len(test),
            "served_trained_on": len(fitted_on),
            "words": evaluation_words(len(test), len(data.frame)),
        },
        **_model_facts(trained),
        "uses_name": spec.uses_name,
        "threshold": threshold,
        "temperature": trained.temperature,
        "epochs_run": len(trained.history.get("loss", [])),
        "best_epoch": trained.best_epoch,
        "train_seconds": round(trained.seconds, 2),
        "background_rows": min(BACKGROUND_ROWS, len(train)),
        "spec": spec.to_dict(),
        "library_versions": _library_versions(),
        "metrics": {
            "validation": evaluate_predictions(val[TARGET].to_numpy(), p_val, threshold),
            "test": evaluate_predictions(test[TARGET].to_numpy(), p_test, threshold, seen=seen),
        },
    }
    meta["metrics"]["validation"].pop("curves")
    test_frame = test.copy()
    test_frame.insert(0, "row", test.index.to_numpy())
    test_frame["success_probability"] = p_test
    test_frame["seen_organisation"] = seen
    return meta, test_frame.reset_index(drop=True)
