"""Train every variant on the real history: wall time, epochs and test metrics per variant.

Also times the original recipe (batch 32, 100 epochs, no early stopping) for the baseline and
reports the ratio. Goal: all five variants in <= 90 s on the 2-core machine, with the
baseline's accuracy no worse than the original recipe's.

    .venv/bin/python bench/train.py [--seed N] [--skip-original]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
from _common import require_data

from core.evaluation import classification_metrics
from core.schema import TARGET
from core.training import fit_variant, predict_proba, split_rows
from core.variants import VARIANTS
from core.workflow import load_training_data, train_variants

ORIGINAL = dataclasses.replace(
    VARIANTS["baseline"], batch_size=32, epochs=100, early_stopping=False, learning_rate=1e-3
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument(
        "--original-seeds", default=None, help="seeds for the recipe comparison (default: --seed)"
    )
    args = parser.parse_args()
    data = load_training_data(require_data())
    rows = []
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in VARIANTS:
            started = time.perf_counter()
            meta = train_variants(data, [name], seed=args.seed, models_dir=tmp)[name]
            wall = time.perf_counter() - started
            total += wall
            t = meta["metrics"]["test"]
            rows.append(
                (name, wall, meta["epochs_run"], t["accuracy"], t["roc_auc"], t["log_loss"], t["ece"])
            )
    print(f"{'variant':<14}{'wall s':>8}{'epochs':>8}{'acc':>8}{'auc':>8}{'logloss':>9}{'ece':>8}")
    for r in rows:
        print(f"{r[0]:<14}{r[1]:>8.1f}{r[2]:>8}{r[3]:>8.4f}{r[4]:>8.4f}{r[5]:>9.4f}{r[6]:>8.4f}")
    print(f"{'all variants':<14}{total:>8.1f}   (goal <= 90 s)")
    if args.skip_original:
        return
    frame = data.frame
    seeds = [int(x) for x in (args.original_seeds or str(args.seed)).split(",")]
    ours, theirs, walls = [], [], []
    for seed in seeds:
        s = split_rows(frame[TARGET].to_numpy(), seed)
        test = frame.iloc[s.test]
        for recipe, out in ((VARIANTS["baseline"], ours), (ORIGINAL, theirs)):
            started = time.perf_counter()
            trained = fit_variant(recipe, frame.iloc[s.train], frame.iloc[s.val], seed)
            if recipe is ORIGINAL:
                walls.append(time.perf_counter() - started)
            p = predict_proba(trained.pipeline, trained.model, test)
            out.append(classification_metrics(test[TARGET].to_numpy(), p)["accuracy"])
    base = rows[0]
    print(
        f"original recipe (batch 32, 100 epochs, no early stopping), seeds {seeds}: {np.mean(walls):.1f} s, "
        f"acc {np.mean(theirs):.4f}; our baseline acc {np.mean(ours):.4f} "
        f"(difference {np.mean(ours) - np.mean(theirs):+.4f}); "
        f"ours trains {np.mean(walls) / base[1]:.1f}x faster"
    )


if __name__ == "__main__":
    main()
