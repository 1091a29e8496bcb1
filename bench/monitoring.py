"""Batch monitoring, measured: false alarms, power against real shifts, the accuracy estimate.

1. Synthetic data: a population of invented applicants; a `tuned` model trained on part of it;
   at least 200 clean batches of 500-5,000 rows drawn from the rest: how many get any `fail`
   (goal <= 5%). Then shifted batches of the same sizes: ASK_AMT in another scale (x1000), an
   unseen category in a third of the rows (a random categorical field), AFFILIATION's two main
   categories swapped: how many fail on that field.
2. The real history (``../shared/data/charity_train.csv``): a stratified share held out, `tuned`
   trained on the rest exactly as ``python -m core train`` does, the held-out rows cut into 20
   batches: estimate error against the realized accuracy (goal: mean |error| <= 0.03), coverage of
   the 90% interval (goal >= 85%), and false alarms on these clean real batches.
3. Speed: profile + checks + estimate of 100,000 rows (goal <= 5 s), and the whole upload path.

    .venv/bin/python bench/monitoring.py [--clean 200] [--shifted 30] [--seeds 0] [--holdout 0.4]
    .venv/bin/python bench/monitoring.py --rounds --seeds 0-29   # 4. the estimate on 30 real rounds
    .venv/bin/python bench/monitoring.py --rounds --seeds 0-29 --vary-evaluation-rows

4. The estimate on real held-out rounds (``rounds``): bias over a whole round of about 6,900 applicants
   (goal: within 0.6 points) and the 90% interval's coverage over 12 varied batches (goal: 11 of 12).
   Every seed holds out another round, but the calibration rows are the one shipped evaluation subset
   (a stable hash of EIN) within the rest, so the seeds share its luck; ``--vary-evaluation-rows``
   draws another subset per seed and measures the method itself.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import DATA

from core import monitoring
from core.batch import score_upload
from core.features import frame_names
from core.registry import load_bundle, resolve_version
from core.schema import CATEGORICAL_FIELDS, TARGET
from core.synthetic import generate


def _train(frame: pd.DataFrame, home: Path, max_epochs: int | None, seed: int = 0):
    from core.datasets import load_training_data
    from core.workflow import train_variants

    data = load_training_data(frame.to_csv(index=False).encode(), name="bench rows")
    models = home / "models"
    train_variants(data, ["tuned"], seed=seed, models_dir=models, max_epochs=max_epochs)
    return load_bundle(models, resolve_version(models, variant="tuned"))


def _check(bundle, rows: pd.DataFrame):
    batch = score_upload(bundle, rows.to_csv(index=False).encode(), "batch.csv")
    return batch


def synthetic(args: argparse.Namespace, home: Path) -> dict:
    rng = np.random.default_rng(11)
    population = generate(60_000, random_state=3)
    train_idx = rng.choice(len(population), 8_000, replace=False)
    bundle = _train(population.iloc[train_idx], home / "synthetic", max_epochs=args.max_epochs)
    rest = population.drop(index=population.index[train_idx]).drop(columns=[TARGET]).reset_index(drop=True)
    sizes = rng.integers(500, 5_001, args.clean)
    any_fail = any_warn = 0
    failed_fields: dict[str, int] = {}
    warned_fields: dict[str, int] = {}
    for size in sizes:
        rows = rest.iloc[rng.choice(len(rest), size, replace=False)]
        check = _check(bundle, rows).check
        any_fail += check.status == monitoring.FAIL
        any_warn += check.status != monitoring.OK
        for c in check.failing():
            failed_fields[c.name] = failed_fields.get(c.name, 0) + 1
        for c in check.warning():
            warned_fields[c.name] = warned_fields.get(c.name, 0) + 1
    out = {
        "clean batches": args.clean,
        "any fail": any_fail,
        "false-alarm rate": any_fail / args.clean,
        "any warn or fail": any_warn,
        "fails by check": failed_fields,
        "warnings by check": warned_fields,
    }
    shifts = {
        "ASK_AMT x1000": lambda r, f: (r.assign(ASK_AMT=r["ASK_AMT"] * 1000), "ASK_AMT"),
        "unseen category in a third of rows": lambda r, f: (_unseen(r, f, rng), f),
        # the synthetic AFFILIATION's two main categories are 54% / 46%: a swap barely changes it;
        # ORGANIZATION's are 69% / 30% (the real history's AFFILIATION, 66% / 32%, is tested below)
        "ORGANIZATION main categories swapped": lambda r, f: (_swap(r, "ORGANIZATION"), "ORGANIZATION"),
    }
    for name, shift in shifts.items():
        detected = 0
        for _ in range(args.shifted):
            size = int(rng.integers(500, 5_001))
            rows = rest.iloc[rng.choice(len(rest), size, replace=False)]
            field = str(rng.choice(CATEGORICAL_FIELDS))
            shifted, target = shift(rows.copy(), field)
            check = _check(bundle, shifted).check
            detected += check.fields[target].status == monitoring.FAIL
        out[f"detected: {name}"] = f"{detected}/{args.shifted}"
    return out


def _unseen(rows: pd.DataFrame, field: str, rng: np.random.Generator) -> pd.DataFrame:
    hit = rng.random(len(rows)) < 1 / 3
    rows[field] = rows[field].astype(object)
    rows.loc[hit, field] = "NEWVALUE"
    return rows


def _swap(rows: pd.DataFrame, field: str = "AFFILIATION") -> pd.DataFrame:
    a, b = rows[field].value_counts().index[:2]
    values = rows[field].astype(object)
    rows[field] = values.where(~values.isin([a, b]), values.map({a: b, b: a}))
    return rows


def _main_two(rows: pd.DataFrame, field: str) -> str:
    share = rows[field].value_counts(normalize=True)
    return f"{share.index[0]} {share.iloc[0]:.0%} / {share.index[1]} {share.iloc[1]:.0%}"


def real(args: argparse.Namespace, home: Path, seed: int) -> dict:
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    keep, held = train_test_split(frame, test_size=args.holdout, stratify=frame[TARGET], random_state=seed)
    bundle = _train(keep, home / f"real{seed}", max_epochs=None, seed=seed)
    held = held.sample(frac=1, random_state=seed).reset_index(drop=True)
    errors, covered, fails, warns = [], 0, 0, 0
    plain_errors, plain_covered = [], 0  # the uncalibrated estimate on the same batches
    swaps = dict.fromkeys(CATEGORICAL_FIELDS, 0)
    for part in np.array_split(np.arange(len(held)), args.batches):
        rows = held.iloc[part]
        batch = _check(bundle, rows.drop(columns=[TARGET]))
        rec = batch.probabilities >= bundle.threshold
        est = monitoring.estimate(batch.probabilities, rec, batch.first_time, batch.calibration)
        y = rows[TARGET].astype(int).to_numpy()[: batch.n]
        actual = float((rec.astype(int) == y).mean())
        errors.append(est.accuracy - actual)
        covered += est.accuracy_low <= actual <= est.accuracy_high
        plain = monitoring.estimate(batch.probabilities, rec)
        plain_errors.append(plain.accuracy - actual)
        plain_covered += plain.accuracy_low <= actual <= plain.accuracy_high
        fails += batch.check.status == monitoring.FAIL
        warns += batch.check.status == monitoring.WARN
        for field in CATEGORICAL_FIELDS:
            swapped = _check(bundle, _swap(rows.drop(columns=[TARGET]).copy(), field)).check
            swaps[field] += swapped.fields[field].status == monitoring.FAIL
    errors = np.array(errors)
    return {
        "seed": seed,
        "batches": args.batches,
        "rows per batch": len(held) // args.batches,
        "mean |estimate - realized|": round(float(np.abs(errors).mean()), 4),
        "mean estimate - realized": round(float(errors.mean()), 4),
        "max |error|": round(float(np.abs(errors).max()), 4),
        "interval coverage": f"{covered}/{args.batches}",
        "uncalibrated: mean |error|, bias, coverage": (
            round(float(np.abs(plain_errors).mean()), 4),
            round(float(np.mean(plain_errors)), 4),
            f"{plain_covered}/{args.batches}",
        ),
        "batches with any fail": fails,
        "batches with a warning (no fail)": warns,
        "main-category swap detected, by field": {
            f"{f} ({_main_two(held, f)})": f"{n}/{args.batches}" for f, n in swaps.items()
        },
    }, bundle


def rounds(args: argparse.Namespace, home: Path, seed: int) -> dict:
    """The accuracy estimate on real held-out rounds: a random quarter of the history (about 6,900
    applicants, a whole round) held out, `tuned` trained on the rest exactly as ``python -m core
    train`` does; the estimate of the whole round against its realized accuracy, then 12 varied
    batches (4 random, 4 first-time organisations only, 4 large asks) for the 90% interval's coverage.
    Also the same figures without the per-segment calibration (the estimate before this round)."""
    from sklearn.model_selection import train_test_split

    import core.datasets

    frame = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    keep, held = train_test_split(
        frame, test_size=args.round_share, stratify=frame[TARGET], random_state=seed
    )
    salt = core.datasets.EVALUATION_SALT
    if args.vary_evaluation_rows:  # another fixed evaluation subset per seed: the method's spread
        core.datasets.EVALUATION_SALT = f"bench-evaluation-rows-{seed}"
    try:
        bundle = _train(keep, home / f"round{seed}", max_epochs=None, seed=seed)
    finally:
        core.datasets.EVALUATION_SALT = salt
    held = held.reset_index(drop=True)
    batch = _check(bundle, held.drop(columns=[TARGET]))
    assert batch.n == len(held), "every held-out row is scored"
    y = held[TARGET].astype(int).to_numpy()
    p, first = batch.probabilities, batch.first_time
    rec = p >= bundle.threshold
    rng = np.random.default_rng(seed + 100)
    asks = held["ASK_AMT"].astype(float).to_numpy()
    pools = {
        "random": np.arange(len(held)),
        "first-time only": np.flatnonzero(first),
        "large asks (top quarter)": np.flatnonzero(asks >= np.quantile(asks, 0.75)),
    }

    names = frame_names(held)
    draws = [(kind, rng.choice(pool, min(len(pool), args.batch_rows), replace=False))
             for kind, pool in pools.items() for _ in range(4)]  # fmt: skip

    def judge(rows: np.ndarray, calibrated: bool) -> dict:
        if calibrated:
            est = monitoring.estimate(p[rows], rec[rows], first[rows], batch.calibration, names[rows])
        else:
            est = monitoring.estimate(p[rows], rec[rows])
        actual = float((rec[rows].astype(int) == y[rows]).mean())
        return {
            "rows": len(rows),
            "estimate": est.accuracy,
            "low": est.accuracy_low,
            "high": est.accuracy_high,
            "realized": round(actual, 6),
            "error": round(est.accuracy - actual, 6),
            "covered": bool(est.accuracy_low <= actual <= est.accuracy_high),
        }

    out: dict = {
        "seed": seed,
        "evaluation rows": "varied per seed" if args.vary_evaluation_rows else "the shipped fixed rows",
        "round rows": len(held),
        "first-time share": round(float(first.mean()), 3),
        "within-organisation correlation": batch.calibration.within_organisation,
        "segment gaps": _segment_gaps(bundle, p, y, first),
    }
    for calibrated in (True, False):
        name = "calibrated (this round)" if calibrated else "uncalibrated, rows independent (before)"
        whole = judge(np.arange(len(held)), calibrated)
        varied = [{"kind": kind, **judge(rows, calibrated)} for kind, rows in draws]
        out[name] = {
            "whole round": whole,
            "varied batches covered": f"{sum(v['covered'] for v in varied)}/{len(varied)}",
            "varied batches": [
                f"{v['kind']}: {v['rows']} rows, est {v['estimate']:.4f} [{v['low']:.4f}, {v['high']:.4f}] "
                f"vs {v['realized']:.4f}" + ("" if v["covered"] else " MISSED")
                for v in varied
            ],
        }
    return out


CALIBRATED, PLAIN = "calibrated (this round)", "uncalibrated, rows independent (before)"


def _gap(p: np.ndarray, y: np.ndarray, threshold: float) -> float:
    """Realized accuracy minus the accuracy the raw chances promise, threshold decision."""
    rec = p >= threshold
    return float(((rec.astype(int) == y) - np.where(rec, p, 1 - p)).mean())


def _segment_gaps(bundle, p: np.ndarray, y: np.ndarray, first: np.ndarray) -> dict:
    """Per segment, how far the served network misjudges its own accuracy on its evaluation rows
    and on the round: across rounds, their covariance is the spread of the network's true miss."""
    test = bundle.test_predictions()
    tp, ty = test["success_probability"].to_numpy(), test[TARGET].astype(int).to_numpy()
    tfirst = ~test["seen_organisation"].to_numpy(dtype=bool)
    return {
        seg: {
            "evaluation": _gap(tp[tmask], ty[tmask], bundle.threshold),
            "round": _gap(p[mask], y[mask], bundle.threshold),
        }
        for seg, mask, tmask in (("repeat", ~first, ~tfirst), ("first", first, tfirst))
    }


def _seeds(text: str) -> list[int]:
    """``0,1,2`` or ``0-29``."""
    if "-" in text:
        low, high = (int(v) for v in text.split("-"))
        return list(range(low, high + 1))
    return [int(v) for v in text.split(",")]


def _covered(result: dict, name: str) -> int:
    return int(result[name]["varied batches covered"].split("/")[0])


def _round_line(result: dict) -> str:
    """One round in a line: the whole round's error and the varied batches covered, both estimates."""
    parts = []
    for name, label in ((CALIBRATED, "calibrated"), (PLAIN, "uncalibrated")):
        whole = result[name]["whole round"]
        parts.append(
            f"{label} {100 * whole['error']:+.2f} pt ({'covered' if whole['covered'] else 'MISSED'}), "
            f"varied {result[name]['varied batches covered']}"
        )
    return f"round {result['seed']}: " + "; ".join(parts)


def rounds_summary(results: list[dict]) -> dict:
    """Across rounds, per estimate: the whole round's error (mean, root mean square, rounds within
    0.6 points), whole rounds covered by the 90% interval, varied batches covered and rounds where at
    least 11 of 12 were (the goals: within 0.6 points; 11 of 12)."""
    out: dict = {"rounds": len(results), "evaluation rows": results[0]["evaluation rows"] if results else ""}
    for name in (CALIBRATED, PLAIN):
        errors = np.array([100 * r[name]["whole round"]["error"] for r in results])
        covered = [_covered(r, name) for r in results]
        whole = sum(r[name]["whole round"]["covered"] for r in results)
        out[name] = {
            "mean error (pt)": round(float(errors.mean()), 2),
            "root mean square error (pt)": round(float(np.sqrt((errors**2).mean())), 2),
            "rounds within 0.6 pt": f"{int((np.abs(errors) <= 0.6).sum())}/{len(results)}",
            "whole rounds covered": f"{whole}/{len(results)}",
            "varied batches covered": f"{sum(covered)}/{12 * len(results)}",
            "rounds with at least 11 of 12 covered": f"{sum(c >= 11 for c in covered)}/{len(results)}",
        }
    if len(results) > 2:  # the network's own miss per segment: cov(evaluation gap, round gap)
        out["networks' miss of their own accuracy, SD across rounds (pt)"] = {
            seg: round(100 * float(np.sqrt(max(np.cov(
                [r["segment gaps"][seg]["evaluation"] for r in results],
                [r["segment gaps"][seg]["round"] for r in results],
            )[0, 1], 0.0))), 2)
            for seg in ("repeat", "first")
        }  # fmt: skip
    return out


def speed(bundle) -> dict:
    rows = generate(100_000, random_state=9, with_target=False)
    blob = rows.to_csv(index=False).encode()
    started = time.perf_counter()
    batch = score_upload(bundle, blob, "speed.csv")
    upload = time.perf_counter() - started
    started = time.perf_counter()
    profile = monitoring.new_profile(bundle)
    first_time = ~bundle.is_seen(batch.features)
    profile.add(batch.features, batch.probabilities, first_time)
    monitoring.check_bundle_profile(bundle, profile)
    monitoring.estimate(batch.probabilities, batch.probabilities >= bundle.threshold)
    checks = time.perf_counter() - started
    return {
        "checks + estimate of 100,000 rows (s)": round(checks, 2),
        "whole upload with checks, 100,000 rows (s)": round(upload, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clean", type=int, default=200)
    parser.add_argument("--shifted", type=int, default=30)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--holdout", type=float, default=0.4)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=30, help="synthetic model only")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument(
        "--rounds",
        action="store_true",
        help="only the estimate on real held-out rounds (per seed in --seeds)",
    )
    parser.add_argument(
        "--round-share", type=float, default=0.25, help="share of the history held out as a round"
    )
    parser.add_argument("--batch-rows", type=int, default=800, help="rows per varied batch")
    parser.add_argument(
        "--vary-evaluation-rows",
        action="store_true",
        help="rounds: calibrate each seed on another evaluation subset (another salt), so the figures "
        "measure the method rather than the luck of the one shipped subset",
    )
    parser.add_argument("--verbose", action="store_true", help="rounds: every batch of every round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["SCREENING_HOME"] = str(home)
        if args.rounds:
            results = []
            for seed in _seeds(args.seeds):
                results.append(rounds(args, home, seed))
                if args.verbose:
                    print("real round:", json.dumps(results[-1], indent=1), flush=True)
                else:
                    print(_round_line(results[-1]), flush=True)
            print(json.dumps(rounds_summary(results), indent=1), flush=True)
            return
        print("synthetic:", synthetic(args, home), flush=True)
        bundle = None
        if not args.skip_real and DATA.exists():
            for seed in _seeds(args.seeds):
                result, bundle = real(args, home, seed)
                print("real history:", result, flush=True)
        if bundle is None:
            bundle = load_bundle(
                home / "synthetic" / "models", resolve_version(home / "synthetic" / "models", variant="tuned")
            )
        print("speed:", speed(bundle), flush=True)


if __name__ == "__main__":
    main()
