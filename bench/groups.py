"""Groups and weak spots, measured: speed on 100,000 labelled rows, and planted-slice recall.

Planted slices: a `tuned` model (the live default) is trained on half of the real history
(``../shared/data/charity_train.csv``) and scores the other half. Twenty times (seeded), a random
conjunction of two field values with at least 200 rows in that half gets half of its labels flipped;
the weak-spot search (minimum size 50, pairs included) should rank it in its top 3, either exactly
or as the slice it was merged into (goal: found in >= 19 of 20). Speed: group rates of every field
plus the weak-spot search on 100,000 labelled rows (goal <= 5 s).

    .venv/bin/python bench/groups.py [--plantings 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import require_data

from core import groups
from core.batch import group_values, score_upload
from core.registry import load_bundle, resolve_version


def train_half(frame: pd.DataFrame, home: Path, seed: int, variant: str = "tuned"):
    from core.datasets import load_training_data
    from core.workflow import train_variants

    data = load_training_data(frame.to_csv(index=False).encode(), name="half of the history")
    train_variants(data, [variant], seed=seed, models_dir=home / "models")
    return load_bundle(home / "models", resolve_version(home / "models", variant=variant))


def found_rank(spots: list[groups.WeakSpot], rule: dict[str, str]) -> int | None:
    """1-based rank of the spot that is the planted rule or absorbed it (None: not in the list)."""
    for i, spot in enumerate(spots, start=1):
        if spot.rule == rule or rule in spot.merged:
            return i
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plantings", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="tuned", help="the model whose errors are searched")
    parser.add_argument("--ranking", default="z", choices=["z", "lower bound"])
    args = parser.parse_args()
    frame = pd.read_csv(require_data(), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(frame))
    fit, rest = frame.iloc[order[: len(frame) // 2]], frame.iloc[order[len(frame) // 2 :]]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SCREENING_HOME"] = tmp
        bundle = train_half(fit, Path(tmp), args.seed, args.variant)
        scored = score_upload(bundle, rest.to_csv(index=False).encode(), "rest.csv")
        values = group_values(scored, bundle)
        y = scored.labels().astype(int)
        pred = (scored.probabilities >= bundle.threshold).astype(int)
        fields = groups.GROUP_FIELDS
        found = []
        for _ in range(args.plantings):
            while True:
                a, b = rng.choice(len(fields), 2, replace=False)
                fa, fb = fields[min(a, b)], fields[max(a, b)]
                pairs = values.groupby([fa, fb], observed=True).size()
                big = pairs[pairs >= 200]
                if len(big):
                    break
            va, vb = big.index[rng.integers(len(big))]
            rule = {fa: str(va), fb: str(vb)}
            rows = np.nonzero(groups.cohort_mask(values, rule))[0]
            flip = rng.choice(rows, len(rows) // 2, replace=False)
            planted = y.copy()
            planted[flip] = 1 - planted[flip]
            spots = groups.weak_spots(values, pred != planted, ranking=args.ranking)
            rank = found_rank(spots, rule)
            found.append(rank is not None and rank <= 3)
            print(f"planted {rule} ({len(rows)} rows): rank {rank}", flush=True)
        print(
            f"planted-slice recall ({args.variant}, ranking by {args.ranking}, error rate "
            f"{(pred != y).mean():.3f}): found in the top 3 in {sum(found)} of {len(found)}",
            flush=True,
        )

        picks = rng.integers(0, len(y), 100_000)
        big_y, big_p = y[picks], scored.probabilities[picks]
        big = values.iloc[picks].reset_index(drop=True)
        started = time.perf_counter()
        rec = big_p >= bundle.threshold
        report, spots = groups.analyse(big, rec, big_p, big_y.astype(float), with_weak_spots=True)
        seconds = time.perf_counter() - started
        print(
            f"groups + weak spots on 100,000 labelled rows: {seconds:.2f} s "
            f"({len(report.groups)} groups, {len(spots)} weak spots)",
            flush=True,
        )


if __name__ == "__main__":
    main()
