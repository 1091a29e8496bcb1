"""Attribution speed: exact field-level SHAP for 1,000 applicants per variant (goal <= 10 s each).

In the same run, times ``shap.KernelExplainer`` on the one-hot columns with a 100-row
background for 20 applicants (the usual way to explain a Keras MLP) and reports the
per-applicant ratio.

    .venv/bin/python bench/explain.py [--models-dir DIR] [--kernel-variants baseline,tuned]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import require_data

from core.explain import FieldExplainer
from core.registry import load_bundle, resolve_version
from core.schema import TARGET, validate
from core.variants import VARIANTS
from core.workflow import load_training_data, train_variants


def kernel_seconds_per_applicant(bundle, applicants: pd.DataFrame, n: int = 20) -> float:
    import keras
    import shap

    from core.training import predict_matrix

    model = keras.models.load_model(bundle.path / "model.keras", compile=False)
    background = bundle.transform(bundle.background())
    x = bundle.transform(applicants.iloc[:n])
    explainer = shap.KernelExplainer(lambda m: predict_matrix(model, m.astype(np.float32)), background)
    started = time.perf_counter()
    explainer.shap_values(x, silent=True)
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-dir", help="use these bundles instead of training fresh ones")
    parser.add_argument("--kernel-variants", default="baseline")
    args = parser.parse_args()
    data_path = require_data()
    raw = pd.read_csv(data_path, dtype=str, keep_default_na=False).drop(columns=[TARGET])
    applicants = validate(raw.sample(1000, random_state=1)).accepted
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(args.models_dir) if args.models_dir else Path(tmp)
        if not args.models_dir:
            train_variants(load_training_data(data_path), models_dir=models)
        ours: dict[str, float] = {}
        print(f"{'variant':<14}{'fields':>7}{'1000 applicants s':>19}{'max additivity err':>20}")
        for name in [v for v in VARIANTS if (models / v).is_dir()]:
            bundle = load_bundle(models, resolve_version(models, variant=name))
            started = time.perf_counter()
            attr = FieldExplainer(bundle).explain(applicants)
            wall = time.perf_counter() - started
            ours[name] = wall / len(applicants)
            err = np.abs(attr.base_value + attr.values.sum(axis=1) - bundle.predict_proba(applicants)).max()
            print(f"{name:<14}{len(attr.fields):>7}{wall:>19.2f}{err:>20.1e}")
        for name in [v for v in args.kernel_variants.split(",") if v]:
            bundle = load_bundle(models, resolve_version(models, variant=name))
            per = kernel_seconds_per_applicant(bundle, applicants)
            print(
                f"KernelExplainer [{name}, {len(bundle.feature_fields)} one-hot columns, 100-row bg]: "
                f"{per:.2f} s per applicant vs ours {ours[name] * 1000:.1f} ms: {per / ours[name]:,.0f}x"
            )


if __name__ == "__main__":
    main()
