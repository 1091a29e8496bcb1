"""Score a 1,000,000-row file made by resampling the real history.

Reports wall time and peak memory of ``python -m core score``'s code path (``core.batch.score_file``
with reasons for the most likely rows; goal: <= 15 s, <= 2 GB) and the ratio against the naive way
(read all, pd.get_dummies, Keras model.predict).

    .venv/bin/python bench/score.py [--rows N] [--variant NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, peak_rss_mb, require_data

CHILD = """
import sys, time, resource
sys.path.insert(0, {root!r})
mode, models, variant, src, out = sys.argv[1:6]
from core.registry import load_bundle, resolve_version
bundle = load_bundle(models, resolve_version(models, variant=variant))
started = time.perf_counter()
if mode == "ours":
    from core.batch import score_file
    from core.explain import FieldExplainer
    score_file(bundle, src, out, explainer=FieldExplainer(bundle))
else:
    import numpy as np, pandas as pd, keras
    model = keras.models.load_model(bundle.path / "model.keras", compile=False)
    df = pd.read_csv(src)
    x = pd.get_dummies(df.drop(columns=["EIN", "NAME"]))
    x = x.reindex(columns=range(len(bundle.card.feature_names)), fill_value=0).astype("float32")
    p = model.predict(x.to_numpy(), verbose=0)
    df.assign(p=p[:, 0]).to_csv(out, index=False)
wall = time.perf_counter() - started
print(wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def run(mode: str, models: Path, variant: str, src: Path, out: Path) -> tuple[float, float]:
    code = CHILD.format(root=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code, mode, str(models), variant, str(src), str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall, peak = proc.stdout.split()[-2:]
    return float(wall), float(peak)


PREPARE = """
import sys
sys.path.insert(0, {root!r})
import pandas as pd
from core.workflow import load_training_data, train_variants
data, rows, models, out, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
train_variants(load_training_data(data), variants.split(","), models_dir=models)
big = pd.read_csv(data).drop(columns=["IS_SUCCESSFUL"]).sample(rows, replace=True, random_state=0)
big.to_csv(out, index=False)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variant", default="baseline", help="variant for the naive comparison")
    args = parser.parse_args()
    data_path = require_data()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = sorted({args.variant, "tuned"})
        src = tmp / "big.csv"
        # Training and the resampled file are made in a child: this process stays small, so the
        # children it forks to measure start from a small resident set (peak RSS is inherited).
        subprocess.run(
            [sys.executable, "-c", PREPARE.format(root=str(ROOT)), str(data_path), str(args.rows),
             str(tmp / "models"), str(src), ",".join(variants)],
            check=True, capture_output=True,
        )  # fmt: skip
        print(f"{args.rows:,} rows, {src.stat().st_size / 1e6:.0f} MB")
        for variant in variants:
            wall, peak = run("ours", tmp / "models", variant, src, tmp / "out.csv")
            print(f"score_file [{variant}]: {wall:.1f} s, peak {peak:.0f} MB (goals <= 15 s, <= 2048 MB)")
        try:
            naive_wall, naive_peak = run("naive", tmp / "models", args.variant, src, tmp / "naive.csv")
            ours_wall, _ = run("ours", tmp / "models", args.variant, src, tmp / "out.csv")
            print(
                f"naive read-all + get_dummies + model.predict [{args.variant}]: {naive_wall:.1f} s, "
                f"peak {naive_peak:.0f} MB; ours is {naive_wall / ours_wall:.1f}x faster"
            )
        except subprocess.CalledProcessError as err:
            print(f"naive way failed: {err.stderr.strip().splitlines()[-1]}")
    print(f"bench process peak {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
