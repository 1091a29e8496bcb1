"""Accuracy of every variant on the real history: random split and split by organisation.

For each variant and seed: train on the training split (early stopping on the validation
split), report accuracy / ROC AUC / log loss / ECE on the random 20% test split (also for
test rows whose organisation was / was not seen in training) and on a grouped split where
no organisation is on both sides. Prints mean ± std over seeds and training time.

    .venv/bin/python bench/accuracy.py [--seeds 0,1,2] [--variants tuned,baseline]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import require_data

from core.evaluation import evaluate_grouped, evaluate_predictions
from core.features import known_names, seen_mask
from core.schema import TARGET
from core.training import fit_variant, predict_proba, split_rows
from core.variants import VARIANTS
from core.workflow import load_training_data

METRICS = ("accuracy", "roc_auc", "log_loss", "ece")


def fmt(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    frame = load_training_data(require_data()).frame
    y = frame[TARGET].to_numpy()
    rows = []
    for name in args.variants.split(","):
        spec = VARIANTS[name]
        res: dict[str, list[float]] = {}
        for seed in seeds:
            s = split_rows(y, seed)
            train, val, test = frame.iloc[s.train], frame.iloc[s.val], frame.iloc[s.test]
            started = time.perf_counter()
            trained = fit_variant(spec, train, val, seed)
            res.setdefault("train seconds", []).append(time.perf_counter() - started)
            seen = seen_mask(test, known_names(train))
            probabilities = predict_proba(trained.pipeline, trained.model, test)
            rep = evaluate_predictions(test[TARGET].to_numpy(), probabilities, seen=seen)
            grp = evaluate_grouped(name, frame, seed)
            for m in METRICS:
                res.setdefault(f"random {m}", []).append(rep[m])
            res.setdefault("new-org accuracy", []).append(rep["new_organisations"]["accuracy"])
            res.setdefault("new-org roc_auc", []).append(rep["new_organisations"]["roc_auc"])
            res.setdefault("seen-org accuracy", []).append(rep["seen_organisations"]["accuracy"])
            for m in METRICS:
                res.setdefault(f"grouped {m}", []).append(grp[m])
        rows.append((name, res))
        print(f"[{name}] done", flush=True)
    print(
        f"\nmean ± std over seeds {seeds} ({len(frame):,} rows; test 20%, grouped test 20% of organisations)"
    )
    print(f"{'metric':<20}" + "".join(f"{name:>19}" for name, _ in rows))
    for k in rows[0][1]:
        print(f"{k:<20}" + "".join(f"{fmt(res[k]):>19}" for _, res in rows))


if __name__ == "__main__":
    main()
