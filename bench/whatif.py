"""Counterfactual search, measured on the real history.

`tuned` is trained on 80% of ``../shared/data/charity_train.csv`` as ``python -m core train`` does;
1,000 applicants of the other 20% that it does not recommend are searched with all nine fields
changeable and at most two changes (goal: <= 15 s). Reported: the time, the share with a suggestion,
how many fields the suggestions change, and that every suggestion reaches the threshold when the
changed row is scored again through the normal scoring path.

    .venv/bin/python bench/whatif.py [--rows 1000] [--seed 0]
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
from sklearn.model_selection import train_test_split

from core.batch import score_upload
from core.registry import load_bundle, resolve_version
from core.schema import TARGET
from core.whatif import CHANGEABLE, Searcher


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-changes", type=int, default=2)
    args = parser.parse_args()
    frame = pd.read_csv(require_data(), dtype=str, keep_default_na=False)
    keep, held = train_test_split(frame, test_size=0.2, stratify=frame[TARGET], random_state=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SCREENING_HOME"] = tmp
        from core.datasets import load_training_data
        from core.workflow import train_variants

        models = Path(tmp) / "models"
        train_variants(load_training_data(keep.to_csv(index=False).encode(), name="80%"), ["tuned"],
                       seed=args.seed, models_dir=models)  # fmt: skip
        bundle = load_bundle(models, resolve_version(models, variant="tuned"))
        scored = score_upload(bundle, held.drop(columns=[TARGET]).to_csv(index=False).encode(), "held.csv")
        below = np.flatnonzero(scored.probabilities < bundle.threshold)[: args.rows]
        rows = scored.features.iloc[below].reset_index(drop=True)
        started = time.perf_counter()
        searcher = Searcher(bundle, CHANGEABLE, args.max_changes)
        found = searcher.search(rows, bundle.threshold)
        seconds = time.perf_counter() - started
        with_one = [c for c in found if c.found]
        sizes = pd.Series([len(c.changes) for c in with_one]).value_counts().sort_index().to_dict()
        again = []
        for i, c in enumerate(found):
            if c.found:
                changed = rows.iloc[[i]].copy()
                for f, v in c.changes.items():
                    changed[f] = v
                again.append(float(bundle.predict_proba(changed)[0]) >= bundle.threshold)
        print(
            f"{len(rows)} applicants below the threshold, all nine fields changeable, at most "
            f"{args.max_changes} changes: {seconds:.1f} s "
            f"({seconds / max(len(rows), 1) * 1000:.1f} ms each); {len(with_one)} with a suggestion "
            f"({len(with_one) / max(len(rows), 1):.0%}); fields changed: {sizes}; "
            f"re-scored and at the threshold: {sum(again)} of {len(again)}",
            flush=True,
        )
        print("examples:", [c.text for c in with_one[:3]], flush=True)


if __name__ == "__main__":
    main()
