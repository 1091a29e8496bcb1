"""Command line: everything the dashboard does, from ``python -m core``.

User errors (a bad file, a missing model) exit non-zero with one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core import config
from core.errors import BadRequest, ScreeningError

EXIT_USER_ERROR = 2
UserError = BadRequest  # something the user can fix; printed as one line


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
    from core.datasets import load_training_data
    from core.variants import VARIANTS
    from core.workflow import train_variants

    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.max_epochs is not None and args.max_epochs < 1:
        raise UserError("--max-epochs must be at least 1")
    source = args.data or config.train_csv()
    data = load_training_data(source)
    print(
        f"Training on {data.source}: {len(data.frame)} rows"
        + (f" ({data.report.n_rejected} invalid rows skipped)" if data.report.n_rejected else ""),
        file=sys.stderr,
    )
    progress, close = _progress_bar() if not args.quiet else (None, lambda: None)
    try:
        cards = train_variants(
            data,
            variants,
            seed=args.seed,
            models_dir=_models_dir(args),
            progress=progress,
            grouped=args.grouped,
            max_epochs=args.max_epochs,
        )
    finally:
        close()
    for card in cards.values():
        test = card.test
        print(
            f"{card.variant:<12} acc {test['accuracy']:.4f}  auc {test['roc_auc'] or float('nan'):.4f}  "
            f"logloss {test['log_loss']:.4f}  epochs {card.epochs_run:>3}  {card.train_seconds:.1f}s",
            file=sys.stderr,
        )
        print(card.version)
    from core.registry import live_version

    print(f"Saved to {_models_dir(args)}; live model: {live_version(_models_dir(args))}", file=sys.stderr)
    return 0


def _bundle(args: argparse.Namespace):
    from core.registry import load_bundle, resolve_version

    if getattr(args, "variant", None) and getattr(args, "version", None):
        raise UserError("give --variant or --version, not both")
    models_dir = _models_dir(args)
    version = resolve_version(models_dir, getattr(args, "variant", None), getattr(args, "version", None))
    return load_bundle(models_dir, version)


def cmd_score(args: argparse.Namespace) -> int:
    import tempfile

    from core.batch import check_recordable, learned_notice, score_file
    from core.explain import FieldExplainer
    from core.registry import live_version

    user = check_recordable(args.user) if args.record else None
    bundle = _bundle(args)
    with tempfile.TemporaryDirectory() as tmp:
        # the record keeps the rejects even when they were not asked for
        rejects = args.rejects or (str(Path(tmp) / "rejects.csv") if args.record else None)
        summary, rejects_path = score_file(
            bundle,
            args.input,
            args.output,
            rejects=rejects,
            threshold=args.threshold,
            explainer=FieldExplainer(bundle),
        )
        print(
            f"{summary.rows} rows: {summary.accepted} scored, {summary.rejected} rejected, "
            f"{summary.with_warnings} with warnings, {summary.recommended} recommended "
            f"(model version {summary.version})",
            file=sys.stderr,
        )
        if summary.rejected and not args.rejects:
            print(
                "Rejected rows were not written; pass --rejects FILE to get them with reasons.",
                file=sys.stderr,
            )
        if notice := learned_notice(summary.learned, summary.version):
            print(notice, file=sys.stderr)
        if args.record:
            live = bundle.version == live_version(_models_dir(args))
            print(_record_file(args, bundle, summary, user, live, rejects_path.read_bytes()))
    return 0


def _record_file(args: argparse.Namespace, bundle, summary, user: str, live: bool, rejects: bytes) -> str:
    """Record a scored file as a batch: the output and rejects bytes exactly as written."""
    import hashlib

    from core import storage
    from core.batch import monitoring_record
    from core.decisions import Rule

    threshold = bundle.threshold if args.threshold is None else float(args.threshold)
    return storage.record_batch(
        user=user,
        file_name=Path(args.input).name,
        file_sha256=hashlib.sha256(Path(args.input).read_bytes()).hexdigest(),
        counts={
            "rows": summary.rows,
            "accepted": summary.accepted,
            "rejected": summary.rejected,
            "with_warnings": summary.with_warnings,
        },
        variant=bundle.variant,
        version=bundle.version,
        live=live,
        rule=Rule("threshold", threshold=threshold),
        selected=summary.recommended,
        results_csv=Path(args.output).read_bytes(),
        rejects_csv=rejects,
        monitoring=monitoring_record(summary.check, summary.estimate),
    )


def _input(args: argparse.Namespace) -> Path:
    """``--input`` as an existing file (a user error otherwise)."""
    path = Path(args.input)
    if not path.is_file():
        raise UserError(f"File not found: {args.input}")
    return path


def _write_json(path: str, data: dict) -> None:
    from core.storage import to_json

    _write_atomic(Path(path), (to_json(data) + "\n").encode())


def cmd_check(args: argparse.Namespace) -> int:
    """Data checks of a file against the model's training data, and the accuracy estimate."""
    from core.batch import estimate_of, learned_notice, score_upload
    from core.decisions import Rule
    from core.monitoring import ASSUMPTION

    bundle = _bundle(args)
    threshold = bundle.threshold if args.threshold is None else float(args.threshold)
    Rule("threshold", threshold=threshold)  # validates it
    path = _input(args)
    batch = score_upload(bundle, path, path.name)
    if batch.check is None:
        raise UserError(
            f"Model version {bundle.version} has no reference profile (its training data is not available "
            "here), so the batch cannot be checked."
        )
    est = estimate_of(batch, batch.probabilities >= threshold)
    out = {
        **batch.check.to_dict(),
        "threshold": threshold,
        "estimate": {**est.to_dict(), "assumption": ASSUMPTION},
        "trained_on_rows": batch.learned,  # rows the served network learned from (null: cannot tell)
    }
    _write_json(args.json, out)
    print(batch.check.summary(), file=sys.stderr)
    print(est.sentence(), file=sys.stderr)
    if notice := learned_notice(batch.learned, batch.version):
        print(notice, file=sys.stderr)
    return 0


def cmd_outcomes(args: argparse.Namespace) -> int:
    """Attach outcomes to a recorded batch and compare them with the estimate made at scoring time."""
    from core.batch import attach_outcomes
    from core.storage import to_json

    path = _input(args)
    user = args.user or os.environ.get("USER") or "cli"
    result = attach_outcomes(args.batch, path.read_bytes(), path.name, user, replace=args.replace)
    data = result.to_dict()
    if args.json:
        _write_json(args.json, data)
    print(to_json(data))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Recorded batches, newest first, or one batch with its overrides and outcomes."""
    from core.record import history_list, history_show
    from core.storage import to_json

    if args.action == "list":
        if args.batch:
            raise UserError("history list takes no batch id (did you mean: history show ID?)")
        batches = history_list()
        if args.json:
            print(to_json(batches))
        else:
            for b in batches:
                print(
                    f"{b['id']}  {b['created_at'][:16]}  {b['user']:<12.12} {b['rows']:>7} rows "
                    f"{b['accepted']:>7} accepted {b['selected']:>7} selected  {b['version']}  "
                    f"{b['file_name']!r}"
                )
        return 0
    if not args.batch:
        raise UserError("history show needs a batch id (list them with: python -m core history list)")
    shown = history_show(args.batch)
    if args.json:
        print(to_json(shown))
    else:
        for key, value in shown.items():
            if key in ("overrides", "outcomes"):
                print(f"{key}: {len(value)}")
                for item in value:
                    print("  " + json.dumps(item, default=str))
            else:
                print(f"{key}: {value}")
    return 0


def cmd_override(args: argparse.Namespace) -> int:
    """One applicant's decision changed (or an override undone), with who and why."""
    from core.record import override

    done = override(args.batch, args.line, args.decision, args.reason, args.user)
    print(done.sentence())
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Two versions on the same labelled rows (default: rows neither served network trained on)."""
    from core.evaluation import compare_versions, unseen_given_rows
    from core.registry import load_bundle

    if args.version_a == args.version_b:
        raise UserError("give two different versions")
    a = load_bundle(_models_dir(args), args.version_a)
    b = load_bundle(_models_dir(args), args.version_b)
    rows, on = None, None
    if args.input:
        from core.reading import read_table
        from core.schema import validate

        path = _input(args)
        report = validate(read_table(path.read_bytes()), need_target=True)
        if report.n_accepted == 0:
            raise UserError(f"{path.name} has no valid rows with IS_SUCCESSFUL 0 or 1")
        rows, on, _ = unseen_given_rows([a, b], report.accepted.reset_index(drop=True), path.name)
        on += f"; {report.n_rejected:,} rows of the file were rejected"
    result = compare_versions(a, b, rows, on)
    out = {k: result[k] for k in ("rows", "on", "a", "b", "mcnemar_p")}
    _write_json(args.json, out)
    print(
        f"{out['rows']:,} rows ({out['on']}): {a.version} accuracy {out['a']['accuracy']:.4f}, "
        f"{b.version} accuracy {out['b']['accuracy']:.4f}, McNemar p = {out['mcnemar_p']:.3g}",
        file=sys.stderr,
    )
    return 0


def cmd_groups(args: argparse.Namespace) -> int:
    """Group rates of the decision on a file, and (with labels) the model's weak spots."""
    from core.batch import decide, groups_of, score_upload
    from core.decisions import Rule
    from core.groups import GROUP_FIELDS

    if args.threshold is not None and args.budget is not None:
        raise UserError("give --threshold or --budget, not both")
    if args.min_size is not None and args.min_size < 1:
        raise UserError("--min-size must be at least 1")
    by = (
        [f.strip().upper() if f.strip().lower() != "first_time" else "first_time" for f in args.by.split(",")]
        if args.by
        else None
    )
    unknown = [f for f in by or [] if f not in GROUP_FIELDS]
    if unknown:
        raise UserError(f"unknown --by field(s) {', '.join(unknown)}; choose from {', '.join(GROUP_FIELDS)}")
    bundle = _bundle(args)
    rule = (
        Rule("budget", budget=args.budget, rank_by="probability")
        if args.budget is not None
        else Rule("threshold", threshold=bundle.threshold if args.threshold is None else args.threshold)
    )
    path = _input(args)
    scored = score_upload(bundle, path, path.name)
    if scored.n == 0:
        raise UserError("no valid rows to group")
    selection = decide(scored, rule)
    report, spots = groups_of(
        scored, bundle, selection.mask, by, args.min_size, args.weak_spots,
        slice_min=args.min_size,
    )  # fmt: skip
    out = {
        "model_version": bundle.version,
        "n_rows": scored.n,
        "decision": {"rule": rule.describe(), "recommended": int(selection.mask.sum())},
        "labelled": scored.labels() is not None,
        **report.to_dict(),
    }
    if args.weak_spots:
        if spots is None:
            print(
                "No IS_SUCCESSFUL column: weak spots need outcomes, so none were computed.", file=sys.stderr
            )
        else:
            out["weak_spots"] = [s.to_dict() for s in spots]
    _write_json(args.json, out)
    for sentence in report.sentences:
        print(sentence, file=sys.stderr)
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    """What it would take for each applicant below the threshold to reach it."""
    from core.scoring import neutralise
    from core.whatif import parse_fields, whatif_frame

    fields = parse_fields(args.change)
    if args.max_changes is not None and not 1 <= args.max_changes <= 3:
        raise UserError("--max-changes must be 1, 2 or 3")
    path = _input(args)
    bundle = _bundle(args)
    frame = whatif_frame(bundle, path, args.threshold, fields, args.max_changes or 2)
    _write_atomic(Path(args.output), neutralise(frame).to_csv(index=False).encode("utf-8"))
    below = frame["cf_found"].astype(str)
    print(
        f"{len(frame)} rows: {int((below == '1').sum())} below the threshold with a suggestion, "
        f"{int((below == '0').sum())} without one (model version {bundle.version})",
        file=sys.stderr,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """A recorded batch's self-contained HTML report."""
    from core.report import batch_report, write_html

    document, facts = batch_report(args.batch, _models_dir(args))
    write_html(Path(args.output), document)
    print(
        f"Wrote the report of batch {facts.batch_id} (model version {facts.version}) to {args.output}",
        file=sys.stderr,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """A version's figures on a labelled file's rows that its served network never trained on."""
    from core.evaluation import evaluate_predictions, unseen_given_rows
    from core.reading import read_table
    from core.schema import TARGET, validate

    bundle = _bundle(args)
    report = validate(read_table(args.input), need_target=True)
    if report.n_accepted == 0:
        raise UserError("no valid rows with IS_SUCCESSFUL to evaluate on")
    source = Path(args.input).name
    rows, on, left_out = unseen_given_rows([bundle], report.accepted.reset_index(drop=True), source)
    probs = bundle.predict_proba(rows.drop(columns=[TARGET]))
    result = evaluate_predictions(rows[TARGET].to_numpy(), probs, bundle.threshold, seen=bundle.is_seen(rows))
    result.pop("curves")
    result = {
        "variant": bundle.variant,
        "version": bundle.version,
        "rows": report.n_input,
        "rejected_rows": report.n_rejected,
        "trained_on_rows": left_out,  # valid rows left out: the served network learned from them
        "evaluated_rows": len(rows),
        "on": on,
        "overall": result,
    }
    result["seen_organisations"] = result["overall"].pop("seen_organisations")
    result["new_organisations"] = result["overall"].pop("new_organisations")
    print(json.dumps(result, indent=2))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from core.explain import FieldExplainer, explanation_frame, name_records
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
    frame = explanation_frame(
        report.input_rows(raw), attr, seen_names=bundle.seen_names, records=name_records(bundle)
    )
    _write_atomic(Path(args.output), to_csv_bytes(frame))
    print(
        f"{report.n_input} rows: {report.n_accepted} explained, {report.n_rejected} rejected "
        f"(model version {bundle.version}, base value {attr.base_value:.3f}, {len(attr.fields)} fields)",
        file=sys.stderr,
    )
    return 0


def cmd_ensure_models(args: argparse.Namespace) -> int:
    """Train the default variants on the demo data unless each has a healthy version already."""
    from core.registry import list_versions, live_version
    from core.variants import VARIANTS

    cards, errors = list_versions(_models_dir(args), every_file=True)
    healthy = {c.variant for c in cards.values()}
    missing = [v for v in VARIANTS if v not in healthy]
    if not missing and live_version(_models_dir(args)):
        print(f"Models ready in {_models_dir(args)}.", file=sys.stderr)
        return 0
    for where, message in errors.items():
        print(f"Not loadable, kept as it is: {where}: {message}", file=sys.stderr)
    args.variants = ",".join(missing or list(VARIANTS))
    return cmd_train(args)


def cmd_models(args: argparse.Namespace) -> int:
    from core import registry

    models_dir = _models_dir(args)
    if args.action == "list":
        cards, errors = registry.list_versions(models_dir)
        live = registry.live_version(models_dir)
        rows = [
            {
                "variant": c.variant,
                "version": c.version,
                "live": c.version == live,
                "created": c.created,
                "metrics": {k: v for k, v in c.test.items() if k != "curves"},
                "synthetic": c.synthetic,
                "training_data": c.training_data.__dict__,
                "migrated_from": c.migrated_from,
            }
            for c in cards.values()
        ]
        for where, message in errors.items():
            print(f"not loadable: {where}: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                acc = r["metrics"].get("accuracy")
                print(
                    f"{'LIVE ' if r['live'] else '     '}{r['version']}  {r['created'][:19]}  "
                    f"acc {acc:.4f}  {'synthetic' if r['synthetic'] else 'real'}"
                )
        return 0
    user = args.user or os.environ.get("USER") or "cli"
    if args.action == "promote":
        event = registry.promote(models_dir, _need(args.version, "VERSION"), user, args.reason)
        print(f"Live model is now {event.version} (was {event.previous}).", file=sys.stderr)
    elif args.action == "rollback":
        event = registry.rollback(models_dir, user, args.reason)
        print(f"Rolled back: live model is now {event.version} (was {event.previous}).", file=sys.stderr)
    elif args.action == "remove":
        from core import storage

        path = registry.remove_version(models_dir, _need(args.version, "VERSION"), storage.versions_used())
        print(f"Removed {path.name}.", file=sys.stderr)
    elif args.action == "card":
        if not args.output:
            raise UserError("give --output FILE.md (Markdown) or FILE.html (self-contained HTML)")
        version = registry.resolve_version(models_dir, version=_need(args.version, "VERSION"))
        card = registry.read_card(registry.version_path(models_dir, version))
        if Path(args.output).suffix.lower() in (".html", ".htm"):
            from core.report import card_html

            _write_atomic(Path(args.output), card_html(card).encode("utf-8"))
        else:
            _write_atomic(Path(args.output), card.to_markdown().encode())
        print(f"Wrote the model card of {version} to {args.output}", file=sys.stderr)
    return 0


def _need(value: str | None, what: str) -> str:
    if not value:
        raise UserError(f"give the {what}")
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cmd_backup(args: argparse.Namespace) -> int:
    from core import storage

    print(storage.backup())
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from core import storage

    used, kept = storage.restore(Path(args.source) if args.source else None)
    print(f"Restored {used}" + (f"; the previous file is kept as {kept}" if kept else ""), file=sys.stderr)
    return 0


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
    elif args.action == "unlock":
        if not args.name:
            raise UserError("give the user name: python -m core users unlock NAME")
        auth.unlock(args.name, by=os.environ.get("USER") or "cli")
        print(f"Unlocked {args.name!r}.", file=sys.stderr)
    elif args.action == "audit":
        for line in auth.read_audit():
            print(json.dumps(line))
    else:
        locked = auth.lockouts()
        for name, account in sorted(auth.load_accounts(path).items()):
            flag = f"\tlocked {locked[name.lower()]:.0f} s" if name.lower() in locked else ""
            print(f"{name}\t{account.get('role', 'staff')}{flag}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from core.synthetic import sample_applicants

    sample_applicants(args.rows).to_csv(args.output, index=False)
    print(f"Wrote {args.rows} synthetic applicants to {args.output}", file=sys.stderr)
    return 0


def cmd_columns(args: argparse.Namespace) -> int:
    from core.schema import COLUMN_NOTES, column_guide

    sys.stdout.write(column_guide().to_csv(index=False))
    print(COLUMN_NOTES, file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Alphabet Soup Screening")
    sub = parser.add_subparsers(dest="command", required=True)

    def models_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models-dir", help="model versions folder (default: $SCREENING_HOME/models)")

    def version_opts(p: argparse.ArgumentParser) -> None:
        models_opt(p)
        p.add_argument("--variant", help="that variant's newest version (default: the live version)")
        p.add_argument("--version", help="one exact version id (default: the live version)")

    def train_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data", help="history CSV with IS_SUCCESSFUL (default: $SCREENING_TRAIN_CSV or demo data)"
        )
        models_opt(p)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--max-epochs", type=int, help="cap every variant's epochs (quick runs and tests)")
        p.add_argument("--grouped", action="store_true", help="also evaluate on a split by organisation NAME")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="train variants; each becomes a new version (never live by itself)")
    train_opts(p)
    p.add_argument("--variants", help="comma-separated (default: all)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score applicants with the live (or a chosen) model version")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    version_opts(p)
    p.add_argument("--rejects", help="write rejected rows with source_line and reason here")
    p.add_argument("--threshold", type=float, help="recommend at this chance (default: the model's)")
    p.add_argument("--record", action="store_true", help="record the batch (prints its id)")
    p.add_argument("--user", help="who records the batch (with --record)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "check", help="data checks of a file against the training data, and the accuracy estimate"
    )
    p.add_argument("--input", required=True)
    version_opts(p)
    p.add_argument(
        "--threshold", type=float, help="decision threshold for the estimate (default: the model's)"
    )
    p.add_argument("--json", required=True, help="write the checks and the estimate here")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "outcomes", help="attach outcomes (EIN or source_line + IS_SUCCESSFUL) to a recorded batch"
    )
    p.add_argument("--batch", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--user", help="who attaches them (default: $USER)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace the batch's outcomes (the earlier set is kept, marked)",
    )
    p.set_defaults(func=cmd_outcomes)

    p = sub.add_parser("history", help="recorded batches: list them, or show one with overrides and outcomes")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("batch", nargs="?", help="show: the batch id")
    p.add_argument("--json", action="store_true", help="print JSON")
    models_opt(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("compare", help="two model versions on the same labelled rows (JSON)")
    p.add_argument("version_a")
    p.add_argument("version_b")
    p.add_argument("--input", help="a labelled CSV (default: rows neither served network trained on)")
    p.add_argument("--json", required=True, help="write the result here")
    models_opt(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("override", help="change one applicant's decision in a recorded batch, with a reason")
    p.add_argument("--batch", required=True)
    p.add_argument("--line", required=True, type=int, help="the applicant's source_line")
    p.add_argument("--decision", required=True, choices=["approve", "decline", "undo"])
    p.add_argument("--reason", required=True)
    p.add_argument("--user", required=True)
    p.set_defaults(func=cmd_override)

    p = sub.add_parser("groups", help="group rates of the decision, and weak spots on labelled files (JSON)")
    p.add_argument("--input", required=True)
    version_opts(p)
    p.add_argument("--threshold", type=float, help="recommend at this chance (default: the model's)")
    p.add_argument("--budget", type=float, help="recommend the most likely applicants within this budget")
    p.add_argument(
        "--by", help="comma-separated fields (default: the nine application fields and first_time)"
    )
    p.add_argument(
        "--min-size", type=int, help="minimum group size (default 30) and weak-spot size (default 50)"
    )
    p.add_argument("--weak-spots", action="store_true", help="also find weak spots (needs IS_SUCCESSFUL)")
    p.add_argument("--json", required=True, help="write the result here")
    p.set_defaults(func=cmd_groups)

    p = sub.add_parser(
        "whatif", help="the smallest verified change that brings each applicant to the threshold"
    )
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    version_opts(p)
    p.add_argument("--threshold", type=float, help="the chance to reach (default: the model's threshold)")
    p.add_argument(
        "--change", help="fields that may change (default: ASK_AMT,USE_CASE,SPECIAL_CONSIDERATIONS)"
    )
    p.add_argument(
        "--max-changes", type=int, default=2, help="at most this many fields change (1-3; default 2)"
    )
    p.set_defaults(func=cmd_whatif)

    p = sub.add_parser("report", help="a recorded batch's report as one self-contained HTML file")
    p.add_argument("--batch", required=True)
    p.add_argument("--output", required=True)
    models_opt(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("evaluate", help="metrics (JSON) on a file that has IS_SUCCESSFUL")
    p.add_argument("--input", required=True)
    version_opts(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("explain", help="per-field SHAP attributions and reasons for each applicant")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    version_opts(p)
    p.add_argument("--rows", type=int, help="explain only the first N rows")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("models", help="list, promote, roll back, remove model versions; write a card")
    p.add_argument("action", choices=["list", "promote", "rollback", "remove", "card"])
    p.add_argument("version", nargs="?")
    models_opt(p)
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.add_argument("--reason", help="why (promote, rollback)")
    p.add_argument("--user", help="who (default: $USER)")
    p.add_argument("--output", help="card: the Markdown file to write")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("ensure-models", help="train the default variants on demo data if missing")
    train_opts(p)
    p.set_defaults(func=cmd_ensure_models, variants=None)

    p = sub.add_parser("users", help="staff accounts for the dashboard login")
    p.add_argument("action", choices=["add", "list", "unlock", "audit"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["staff", "analyst"], default="staff")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--file", help="accounts file (default: $SCREENING_HOME/users.json)")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("backup", help="back up the batch record (SQLite) into $SCREENING_HOME/backups")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore the batch record from the newest (or a given) backup")
    p.add_argument("--from", dest="source", help="a backup file (default: the newest)")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("sample", help="write synthetic applicants to try scoring with")
    p.add_argument("--output", default=str(config.SAMPLE_APPLICANTS))
    p.add_argument("--rows", type=int, default=300)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("columns", help="the columns an applicant file has and the values accepted (CSV)")
    p.set_defaults(func=cmd_columns)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScreeningError as err:
        print(f"error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        # a path the user gave that cannot be used; any other OSError is not theirs to fix and goes
        # up with its traceback (exit 1)
        where = f": {err.filename}" if err.filename else ""
        print(f"error: {err.strerror or type(err).__name__}{where}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
