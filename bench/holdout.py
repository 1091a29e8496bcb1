"""The hidden-holdout judgement, rehearsed on the real history.

The `tuned` goals are judged on a holdout we do not have, with the model trained by
``python -m core train`` on the whole training file. To rehearse that, each seed holds out
a stratified share of the file (default 20%, about the hidden holdout's size relative to
the file), trains every asked variant exactly as ``train`` does on the rest (train /
validation / test split, early stopping, calibration, refit on every row), and scores the
held-out rows: overall, and for rows whose organisation the "training file" never had.

    .venv/bin/python bench/holdout.py [--seeds 0,1,2] [--holdout 0.2] [--variants tuned]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np
from _common import require_data
from sklearn.model_selection import train_test_split

from core.evaluation import evaluate_predictions
from core.features import known_names, seen_mask
from core.registry import load_bundle, resolve_version
from core.schema import TARGET
from core.workflow import load_training_data, train_variants

# The goals for `tuned`: (metric, at least / at most, threshold).
GOALS = {
    "accuracy": (">=", 0.83),
    "roc_auc": (">=", 0.90),
    "log_loss": ("<=", 0.39),
    "ece": ("<=", 0.03),
    "new-org accuracy": (">=", 0.76),
    "new-org roc_auc": (">=", 0.74),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--variants", default="tuned")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    data = load_training_data(require_data())
    frame = data.frame
    res: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    for seed in seeds:
        file_idx, hold_idx = train_test_split(
            np.arange(len(frame)), test_size=args.holdout, random_state=100 + seed, stratify=frame[TARGET]
        )
        file = frame.iloc[file_idx].reset_index(drop=True)
        hold = frame.iloc[hold_idx].reset_index(drop=True)
        seen = seen_mask(hold, known_names(file))
        with tempfile.TemporaryDirectory() as models:
            started = time.perf_counter()
            train_variants(replace(data, frame=file), variants, seed=seed, models_dir=models)
            elapsed = time.perf_counter() - started
            for variant in variants:
                bundle = load_bundle(models, resolve_version(models, variant=variant))
                rep = evaluate_predictions(hold[TARGET].to_numpy(), bundle.predict_proba(hold), seen=seen)
                out = res[variant]
                for m in ("accuracy", "roc_auc", "log_loss", "ece"):
                    out.setdefault(m, []).append(rep[m])
                for m in ("accuracy", "roc_auc"):
                    out.setdefault(f"new-org {m}", []).append(rep["new_organisations"][m])
                out.setdefault("new-org share", []).append(float(1 - seen.mean()))
                out.setdefault("train seconds (all asked)", []).append(elapsed)
        print(f"[seed {seed}] done", flush=True)
    print(
        f"\nheld-out {args.holdout:.0%} of {len(frame):,} rows, mean ± std (min–max) over seeds {seeds}; "
        "models trained as `python -m core train` does on the rest"
    )
    for variant, out in res.items():
        print(f"\n{variant}")
        for k, values in out.items():
            goal = GOALS.get(k) if variant == "tuned" else None
            verdict = ""
            if goal:
                op, target = goal
                met = np.mean(values) >= target if op == ">=" else np.mean(values) <= target
                verdict = f"   goal {op} {target}: {'met' if met else 'NOT met'}"
            print(
                f"  {k:<26}{np.mean(values):.4f} ± {np.std(values):.4f} "
                f"({min(values):.4f}–{max(values):.4f}){verdict}"
            )


if __name__ == "__main__":
    main()
