"""Command line: everything the dashboard does, from ``python -m core``.

User errors (a bad file, a missing model) exit non-zero with one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import config

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Something the user can fix; printed as one line."""


def _models_dir(args: argparse.Namespace) -> Path:
    return Path(args.models_dir) if args.models_dir else config.models_dir()


def _progress_bar():
    """A terminal progress bar per variant (tqdm), as a training progress callback."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(variant: str, epoch: int, max_epochs: int, logs: dict) -> None:
        bar = bars.get(variant)
        if bar is None:
            bar = bars[variant] = tqdm(total=max_epochs, desc=f"{variant:<12}", unit="epoch", leave=True)
        bar.update(epoch - bar.n)
        bar.set_postfix(
            loss=f"{logs.get('loss', 0):.3f}",
            val_acc=f"{logs.get('val_accuracy', 0):.3f}",
        )

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return progress, close


def cmd_train(args: argparse.Namespace) -> int:
    from core.variants import VARIANTS
    from core.workflow import load_training_data, train_variants

    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    source = args.data or config.train_csv()
    data = load_training_data(source)
    print(
        f"Training on {data.source}: {len(data.frame)} rows"
        + (f" ({data.report.n_rejected} invalid rows skipped)" if data.report.n_rejected else ""),
        file=sys.stderr,
    )
    progress, close = _progress_bar() if not args.quiet else (None, lambda: None)
    try:
        metas = train_variants(
            data,
            variants,
            seed=args.seed,
            models_dir=_models_dir(args),
            progress=progress,
            grouped=args.grouped,
        )
    finally:
        close()
    rows = []
    for name, meta in metas.items():
        test = meta["metrics"]["test"]
        rows.append(
            f"{name:<12} acc {test['accuracy']:.4f}  auc {test['roc_auc'] or float('nan'):.4f}  "
            f"logloss {test['log_loss']:.4f}  epochs {meta['epochs_run']:>3}  {meta['train_seconds']:.1f}s"
        )
    print("\n".join(rows))
    print(f"Saved to {_models_dir(args)}", file=sys.stderr)
    return 0


def _bundle(args: argparse.Namespace):
    from core.registry import best_variant, load_bundle

    models_dir = _models_dir(args)
    variant = args.variant or best_variant(models_dir)
    return load_bundle(models_dir, variant)


def cmd_score(args: argparse.Namespace) -> int:
    from core.scoring import score_file

    bundle = _bundle(args)
    summary = score_file(bundle, args.input, args.output, rejects=args.rejects)
    print(
        f"{summary.rows} rows: {summary.accepted} scored, {summary.rejected} rejected, "
        f"{summary.with_warnings} with warnings (model {summary.variant}, version {summary.version})",
        file=sys.stderr,
    )
    if summary.rejected and not args.rejects:
        print(
            "Rejected rows were not written; pass --rejects FILE to get them with reasons.", file=sys.stderr
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation import evaluate_predictions
    from core.reading import read_table
    from core.schema import TARGET, validate

    bundle = _bundle(args)
    report = validate(read_table(args.input), need_target=True)
    if report.n_accepted == 0:
        raise UserError("no valid rows with IS_SUCCESSFUL to evaluate on")
    rows = report.accepted
    probs = bundle.predict_proba(rows.drop(columns=[TARGET]))
    result = evaluate_predictions(rows[TARGET].to_numpy(), probs, bundle.threshold, seen=bundle.is_seen(rows))
    result.pop("curves")
    result = {
        "variant": bundle.variant,
        "version": bundle.version,
        "rows": report.n_input,
        "rejected_rows": report.n_rejected,
        "overall": result,
    }
    result["seen_organisations"] = result["overall"].pop("seen_organisations")
    result["new_organisations"] = result["overall"].pop("new_organisations")
    print(json.dumps(result, indent=2))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from core.explain import FieldExplainer, explanation_frame
    from core.reading import read_table
    from core.schema import validate
    from core.scoring import to_csv_bytes

    bundle = _bundle(args)
    raw = read_table(args.input)
    if args.rows is not None:
        raw = raw.iloc[: max(args.rows, 0)]
    report = validate(raw, known_values=bundle.known_values, ask_range=bundle.ask_range)
    accepted = report.accepted
    attr = FieldExplainer(bundle).explain(accepted)
    frame = explanation_frame(report.input_rows(raw), attr)
    Path(args.output).write_bytes(to_csv_bytes(frame))
    print(
        f"{report.n_input} rows: {report.n_accepted} explained, {report.n_rejected} rejected "
        f"(model {bundle.variant}, base value {attr.base_value:.3f}, {len(attr.fields)} fields)",
        file=sys.stderr,
    )
    return 0


def cmd_ensure_models(args: argparse.Namespace) -> int:
    """Train the default variants on the demo data unless healthy bundles already exist."""
    from core.registry import load_all
    from core.variants import VARIANTS

    bundles, errors = load_all(_models_dir(args))
    missing = [v for v in VARIANTS if v not in bundles]
    if not missing:
        print(f"Models ready in {_models_dir(args)}.", file=sys.stderr)
        return 0
    if errors:
        print("Retraining damaged models: " + ", ".join(errors), file=sys.stderr)
    args.variants = ",".join(missing)
    return cmd_train(args)


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from core import auth

    path = Path(args.file) if args.file else None
    if args.action == "add":
        if not args.name:
            raise UserError("give the user name: python -m core users add NAME")
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"Password for {args.name}: ")
            if getpass.getpass("Again: ") != password:
                raise UserError("the passwords differ")
        auth.add_user(args.name, password, args.role, path)
        print(f"Saved {args.role} account {args.name!r} to {path or config.users_file()}", file=sys.stderr)
    else:
        for name, account in sorted(auth.load_accounts(path).items()):
            print(f"{name}\t{account.get('role', 'staff')}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from core.synthetic import sample_applicants

    sample_applicants(args.rows).to_csv(args.output, index=False)
    print(f"Wrote {args.rows} synthetic applicants to {args.output}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Alphabet Soup Screening")
    sub = parser.add_subparsers(dest="command", required=True)

    def models_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models-dir", help="model bundles folder (default: $SCREENING_HOME/models)")

    p = sub.add_parser("train", help="train and evaluate model variants, save bundles")
    p.add_argument(
        "--data", help="history CSV with IS_SUCCESSFUL (default: $SCREENING_TRAIN_CSV or demo data)"
    )
    models_opt(p)
    p.add_argument("--variants", help="comma-separated (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grouped", action="store_true", help="also evaluate on a split by organisation NAME")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score applicants; writes input columns + probability + decision")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    models_opt(p)
    p.add_argument("--variant", help="default: best by validation accuracy")
    p.add_argument("--rejects", help="write rejected rows with line and reason here")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="metrics (JSON) on a file that has IS_SUCCESSFUL")
    p.add_argument("--input", required=True)
    models_opt(p)
    p.add_argument("--variant")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("explain", help="per-field SHAP attributions and reasons for each applicant")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    models_opt(p)
    p.add_argument("--variant")
    p.add_argument("--rows", type=int, help="explain only the first N rows")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("ensure-models", help="train the default variants on demo data if missing")
    p.add_argument("--data")
    models_opt(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grouped", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_ensure_models, variants=None)

    p = sub.add_parser("users", help="staff accounts for the dashboard login")
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["staff", "analyst"], default="staff")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--file", help="accounts file (default: $SCREENING_HOME/users.json)")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("sample", help="write synthetic applicants to try scoring with")
    p.add_argument("--output", default=str(config.SAMPLE_APPLICANTS))
    p.add_argument("--rows", type=int, default=300)
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    from core.registry import BundleError
    from core.schema import FileError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, FileError, BundleError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
