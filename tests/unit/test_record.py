"""The record read back and acted on: counts, overrides, history and compare from the CLI, honest
comparisons, errors reported rather than turned into facts, and the calibrated estimate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import auth, batch, monitoring, record, storage
from core.cli import main
from core.datasets import evaluation_mask
from core.decisions import Rule
from core.errors import StorageError
from core.evaluation import head_to_head
from core.schema import validate
from core.synthetic import generate, sample_applicants
from tests.conftest import bundle_of, csv_bytes


def scored_file(tmp_path: Path, models_dir: Path, rows: int = 30) -> tuple[str, pd.DataFrame]:
    """A file with two rejected rows, scored and recorded from the CLI; (batch id, the file)."""
    raw = sample_applicants(rows, random_state=21).astype(str)
    raw.loc[4, "STATUS"] = "7"
    raw.loc[6, "ASK_AMT"] = "-5"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    raw.to_csv(src, index=False)
    version = bundle_of(models_dir, "baseline").version
    args = ["score", "--input", str(src), "--output", str(out), "--version", version, "--models-dir",
            str(models_dir), "--record", "--user", "ann"]  # fmt: skip
    assert main(args) == 0
    return storage.list_batches()[0].id, raw


def test_stored_counts_are_the_files_from_the_cli_and_the_core_workflow(models_dir, own_db, tmp_path) -> None:
    batch_id, raw = scored_file(tmp_path, models_dir)
    cli = storage.get_batch(batch_id)
    assert (cli.rows, cli.accepted, cli.rejected) == (30, 28, 2)
    bundle = bundle_of(models_dir, "tuned")
    scored = batch.score_upload(bundle, csv_bytes(raw), "again.csv")
    page = storage.get_batch(
        batch.record(scored, batch.decide(scored, Rule("threshold", threshold=0.5)), "bo", True)
    )
    assert (page.rows, page.accepted, page.rejected) == (30, 28, 2)
    assert len(storage.stored_results(page.id)) == page.accepted


def test_override_rules_in_core_and_cli(models_dir, own_db, tmp_path, capsys) -> None:
    batch_id, raw = scored_file(tmp_path, models_dir)
    loaded = record.load_batch(batch_id)
    i = int(np.flatnonzero(loaded.recommended)[0])
    line = int(loaded.source_lines[i])
    ein, name = raw.loc[line - 2, "EIN"], raw.loc[line - 2, "NAME"]
    base = ["override", "--batch", batch_id, "--user", "bo"]
    capsys.readouterr()
    assert main([*base, "--line", str(line), "--decision", "approve", "--reason", "fine"]) == 2
    assert "is already recommended" in capsys.readouterr().err
    assert main([*base, "--line", str(line), "--decision", "decline", "--reason", "  "]) == 2
    assert capsys.readouterr().err == "error: An override needs a reason.\n"
    assert main([*base, "--line", "6", "--decision", "decline", "--reason", "x"]) == 2  # a rejected row
    assert f"Line 6 is not a row of batch {batch_id}" in capsys.readouterr().err
    assert main([*base, "--line", str(line), "--decision", "undo", "--reason", "x"]) == 2
    assert "has no override to undo" in capsys.readouterr().err
    assert len(storage.list_overrides(batch_id)) == 0
    assert main([*base, "--line", str(line), "--decision", "decline", "--reason", "asked twice"]) == 0
    assert capsys.readouterr().out == (
        f"Override saved for line {line} · EIN {ein} · {name}: decline "
        "(was recommended, now not recommended).\n"
    )
    assert main([*base, "--line", str(line), "--decision", "undo", "--reason", "wrong row"]) == 0
    shown = record.history_show(batch_id)
    assert shown["overrides"] == [
        {"source_line": line, "EIN": ein, "NAME": name, "decision": "decline", "reason": "asked twice",
         "user": "bo", "at": shown["overrides"][0]["at"], "undone": True}
    ]  # fmt: skip


def test_a_review_resolution_is_an_override_only_when_it_changes_the_decision(
    models_dir, own_db, tmp_path
) -> None:
    batch_id, raw = scored_file(tmp_path, models_dir)
    loaded = record.load_batch(batch_id)
    yes, changed, plain = (int(loaded.source_lines[i]) for i in np.flatnonzero(loaded.recommended)[:3])
    no = int(loaded.source_lines[int(np.flatnonzero(~loaded.recommended)[0])])
    record.override(batch_id, changed, "decline", "asked twice", "bo")
    storage.add_review_items(batch_id, [(line, "near the line") for line in (yes, no, changed, plain)])
    items = storage.list_review_items(batch_id).set_index("source_line")["id"].astype(int)

    def who(line: int) -> str:
        return f"line {line} · EIN {raw.loc[line - 2, 'EIN']} · {raw.loc[line - 2, 'NAME']}"

    # approving a row already recommended confirms it: resolved, but no override
    done = record.resolve_review(items[yes], "approve", "checked the references", "bo")
    assert done.sentence() == (
        f"Resolved {who(yes)}: approve. The row was already recommended, so no override was recorded."
    )
    assert storage.override_counts() == {batch_id: 1}  # the one made before
    assert storage.review_counts() == {batch_id: (3, 1)}
    assert storage.list_review_items(batch_id).set_index("source_line").loc[yes, "decision"] == "approve"
    # approving a row not recommended changes it: an override History counts
    done = record.resolve_review(items[no], "approve", "strong case", "cy")
    assert done.sentence() == (
        f"Resolved {who(no)}: approve. It is now the row's override in History "
        "(was not recommended, now recommended)."
    )
    assert storage.override_counts() == {batch_id: 2}
    # keep on an overridden row undoes its override; keep on a row without one changes nothing
    done = record.resolve_review(items[changed], "keep", "back to the model", "cy")
    assert done.sentence() == (
        f"Resolved {who(changed)}: keep the model's recommendation. Its override is undone: back to "
        "the model's decision, recommended."
    )
    done = record.resolve_review(items[plain], "keep", "fine as it is", "cy")
    assert done.sentence() == (
        f"Resolved {who(plain)}: keep the model's recommendation. The row was already recommended, so no "
        "override was recorded."
    )
    made = storage.list_overrides(batch_id)[["row", "decision", "reason"]].values.tolist()
    assert made == [
        [changed, 0, "asked twice"],
        [no, 1, "review: strong case"],
        [changed, -1, "review: back to the model"],
    ]
    final = record.load_batch(batch_id).final
    assert final.tolist() == (loaded.recommended | (loaded.source_lines == no)).tolist()


def test_history_list_and_show_contract(models_dir, own_db, tmp_path, capsys) -> None:
    batch_id, raw = scored_file(tmp_path, models_dir)
    outcomes = tmp_path / "outcomes.csv"
    pd.DataFrame({"EIN": raw["EIN"], "IS_SUCCESSFUL": [i % 2 for i in range(len(raw))]}).to_csv(
        outcomes, index=False
    )
    assert main(["outcomes", "--batch", batch_id, "--input", str(outcomes), "--user", "cy"]) == 0
    capsys.readouterr()
    assert main(["outcomes", "--batch", batch_id, "--input", str(outcomes)]) == 2
    assert "already has outcomes" in capsys.readouterr().err
    assert main(["outcomes", "--batch", batch_id, "--input", str(outcomes), "--replace"]) == 0
    capsys.readouterr()
    assert main(["history", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert set(listed) == {
        "id", "created_at", "user", "file_name", "file_sha256", "rows", "accepted", "rejected",
        "warned", "version", "live", "rule", "selected", "overrides", "outcomes",
    }  # fmt: skip
    assert (listed["id"], listed["rows"], listed["accepted"], listed["rejected"]) == (batch_id, 30, 28, 2)
    assert listed["rule"] == {"mode": "threshold", "threshold": 0.5, "budget": None}
    assert (listed["overrides"], listed["outcomes"]) == (0, 2)
    assert main(["history", "show", batch_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [o["replaced"] for o in shown["outcomes"]] == [True, False]
    assert shown["outcomes"][0]["user"] == "cy" and shown["outcomes"][0]["n_matched"] == 28
    assert set(shown["outcomes"][0]) >= {"attached_at", "user", "n_matched", "accuracy", "replaced"}
    assert main(["history", "show", "no-such-batch", "--json"]) == 2


def test_head_to_head_of_a_refitted_version_is_on_rows_it_never_trained_on(models_dir) -> None:
    tuned, baseline = bundle_of(models_dir, "tuned"), bundle_of(models_dir, "baseline")
    card = tuned.card
    assert card.final_fit is not None and card.fixed_evaluation  # refitted after evaluation
    rows = tuned.test_predictions()
    assert evaluation_mask(rows).all()  # the compared rows are all evaluation rows...
    # ...and the refit used every other row and none of them
    assert card.final_fit["rows"] + card.evaluation["rows"] == card.training_data.rows
    [result] = head_to_head(tuned, baseline)
    assert result["n"] == len(rows) == card.evaluation["rows"]
    assert "neither version's served network trained on them" in result["split"]
    # the card's accuracy is the served network's own on those rows
    y = rows["IS_SUCCESSFUL"].to_numpy()
    assert card.test_accuracy == pytest.approx(float(((rows["success_probability"] >= 0.5) == y).mean()))


def test_cli_compare_contract(models_dir, tmp_path) -> None:
    a, b = bundle_of(models_dir, "tuned").version, bundle_of(models_dir, "l2").version
    out = tmp_path / "c.json"
    assert main(["compare", a, b, "--models-dir", str(models_dir), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert set(got) == {"rows", "on", "a", "b", "mcnemar_p"}
    assert got["a"]["version"] == a and got["b"]["version"] == b
    assert got["rows"] == bundle_of(models_dir, "tuned").card.evaluation["rows"]
    labelled = tmp_path / "l.csv"
    generate(200, random_state=23).to_csv(labelled, index=False)
    assert (
        main(["compare", a, b, "--input", str(labelled), "--models-dir", str(models_dir), "--json", str(out)])
        == 0
    )
    got = json.loads(out.read_text())
    assert got["rows"] == 200 and "l.csv" in got["on"] and 0 <= got["mcnemar_p"] <= 1
    assert "trained on were left out" not in got["on"]  # new rows: none left out


def test_compare_and_evaluate_on_a_file_leave_out_the_rows_a_served_network_trained_on(
    models_dir, tmp_path, capsys
) -> None:
    """Given the very history the versions trained on, `compare --input` and `evaluate` keep only
    the rows each served network never trained on, and say how many they left out."""
    from core.datasets import SYNTHETIC_ROWS

    tuned, l2 = bundle_of(models_dir, "tuned"), bundle_of(models_dir, "l2")
    history = tmp_path / "history.csv"  # the demo history every test version trained on
    generate(SYNTHETIC_ROWS, random_state=0).to_csv(history, index=False)
    out = tmp_path / "c.json"
    args = ["compare", tuned.version, l2.version, "--input", str(history), "--models-dir", str(models_dir)]
    assert main([*args, "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    # the refitted `tuned` learned from every row but the evaluation rows; l2 from fewer
    unseen = tuned.card.evaluation["rows"]
    assert got["rows"] == unseen
    assert f"({SYNTHETIC_ROWS - unseen:,} rows a version trained on were left out)" in got["on"]
    assert got["on"].startswith(
        f"the {unseen:,} valid labelled rows of history.csv that neither version's served"
    )

    capsys.readouterr()
    args = ["evaluate", "--input", str(history), "--version", l2.version, "--models-dir", str(models_dir)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == SYNTHETIC_ROWS
    assert report["trained_on_rows"] == l2.card.splits["train"]  # l2 is not refitted: train rows only
    assert report["evaluated_rows"] == l2.card.splits["validation"] + l2.card.splits["test"]
    assert report["overall"]["n"] == report["evaluated_rows"]

    # rows the network trained on, and nothing else: refused, not a flattering figure
    trained = tmp_path / "trained.csv"
    rows = generate(SYNTHETIC_ROWS, random_state=0)
    rows.loc[~evaluation_mask(rows)].head(300).to_csv(trained, index=False)
    assert main(["compare", tuned.version, l2.version, "--input", str(trained), "--models-dir",
                 str(models_dir), "--json", str(out)]) == 2  # fmt: skip
    assert "is a row one of the versions learned from: a figure on them would flatter it" in (
        capsys.readouterr().err
    )
    # unseen rows with one outcome only: refused by the same rule for compare and evaluate
    one = tmp_path / "one.csv"
    fresh = generate(200, random_state=43)
    fresh.loc[fresh["IS_SUCCESSFUL"] == 1].to_csv(one, index=False)
    assert main(["compare", tuned.version, l2.version, "--input", str(one), "--models-dir",
                 str(models_dir), "--json", str(out)]) == 2  # fmt: skip
    assert "that neither version's served network trained on have one outcome only" in capsys.readouterr().err
    assert (
        main(["evaluate", "--input", str(one), "--version", l2.version, "--models-dir", str(models_dir)]) == 2
    )
    assert "that the version's served network never trained on have one outcome only" in (
        capsys.readouterr().err
    )


def test_scoring_rows_a_version_trained_on_says_so(models_dir, tmp_path, capsys) -> None:
    from core.batch import learned_notice
    from core.datasets import SYNTHETIC_ROWS

    tuned = bundle_of(models_dir, "tuned")
    history = generate(SYNTHETIC_ROWS, random_state=0)  # what the test versions trained on
    trained = history.loc[~evaluation_mask(history)].head(250).drop(columns=["IS_SUCCESSFUL"])
    unseen = history.loc[evaluation_mask(history)].head(50).drop(columns=["IS_SUCCESSFUL"])
    mixed = pd.concat([trained, unseen], ignore_index=True)
    assert batch.score_upload(tuned, csv_bytes(mixed), "mixed.csv").learned == 250
    fresh = generate(80, random_state=41, with_target=False)
    assert batch.score_upload(tuned, csv_bytes(fresh), "fresh.csv").learned == 0
    assert learned_notice(0, tuned.version) is None
    notice = learned_notice(250, tuned.version)
    assert notice.startswith(
        f"250 of these rows are rows model version {tuned.version} learned from in training"
    )

    src, out = tmp_path / "mixed.csv", tmp_path / "check.json"
    mixed.to_csv(src, index=False)
    capsys.readouterr()
    args = ["check", "--input", str(src), "--version", tuned.version, "--models-dir", str(models_dir)]
    assert main([*args, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["trained_on_rows"] == 250
    assert capsys.readouterr().err.endswith(notice + "\n")
    args = ["score", "--input", str(src), "--output", str(tmp_path / "s.csv"), "--version", tuned.version]
    assert main([*args, "--models-dir", str(models_dir)]) == 0
    assert notice in capsys.readouterr().err


def test_a_version_saved_before_it_kept_its_training_rows_says_it_cannot_tell(models_dir) -> None:
    import dataclasses

    from core.evaluation import unseen_given_rows

    tuned = bundle_of(models_dir, "tuned")
    older = dataclasses.replace(
        tuned, digests={k: v for k, v in tuned.digests.items() if k != "trained_rows.parquet"}
    )
    rows = validate(generate(120, random_state=31).astype(str), need_target=True).accepted
    kept, on, left_out = unseen_given_rows([older], rows, "new.csv")
    assert (len(kept), left_out) == (120, None)
    assert on == (
        f"the 120 valid labelled rows of new.csv that the version's served network never trained on; "
        f"{tuned.version} was saved before versions kept their training rows, so whether it trained on "
        "any of these rows cannot be told"
    )
    kept, on, left_out = unseen_given_rows([tuned], rows, "new.csv")
    assert (len(kept), left_out) == (120, 0)
    assert on == "the 120 valid labelled rows of new.csv that the version's served network never trained on"


def test_a_damaged_lockout_record_is_reported_and_kept(home_copy: Path) -> None:
    state = home_copy / "auth_state.json"
    state.write_text("{ this is not json")
    accounts = {"ann": {"hash": auth.hash_password("pw-123456789"), "role": "staff"}}
    with pytest.raises(StorageError, match=r"lockout record .* is damaged"):
        auth.sign_in("ann", "pw-123456789", accounts)
    assert state.read_text() == "{ this is not json"


def test_a_damaged_monitoring_record_is_reported_not_read_as_missing(models_dir, own_db, tmp_path) -> None:
    batch_id, _ = scored_file(tmp_path, models_dir)
    with storage.get_engine().begin() as conn:
        conn.execute(storage.batches.update().values(monitoring="{broken"))
    rec = storage.get_batch(batch_id)
    assert rec.monitoring_damaged
    with pytest.raises(StorageError, match="damaged"):
        rec.monitoring_data()
    assert batch.monitoring_history()["data_checks"].tolist() == ["damaged record"]


def test_only_the_users_own_path_is_a_user_error(monkeypatch, tmp_path) -> None:
    assert main(["report", "--batch", "x", "--output", str(tmp_path / "no" / "such" / "dir" / "r.html")]) in (
        2,
    )

    def disk_full(args):
        raise OSError(28, "No space left on device")

    import core.cli

    monkeypatch.setattr(core.cli, "cmd_columns", disk_full)
    with pytest.raises(OSError, match="No space left"):
        main(["columns"])  # not the user's to fix: it goes up with its traceback


def test_the_calibrated_estimate_corrects_a_segment_and_widens_for_its_own_uncertainty() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 20_000)
    first = rng.random(20_000) < 0.5
    truth = np.where(first, 0.5 + 0.4 * (p - 0.5), p)  # for first-time organisations the chances are too sure
    y = (rng.random(20_000) < truth).astype(int)
    cal = monitoring.EstimateCalibration.fit(p, y, ~first, np.array([""] * 20_000, dtype=object))
    new_p = rng.uniform(0.05, 0.95, 5_000)
    rec = new_p >= 0.5
    only_first = np.ones(5_000, dtype=bool)
    q = 0.5 + 0.4 * (new_p - 0.5)
    expected = float(np.mean(np.where(rec, q, 1 - q)))
    plain = monitoring.estimate(new_p, rec)
    fixed = monitoring.estimate(new_p, rec, only_first, cal)
    assert abs(plain.accuracy - expected) > 0.02  # the raw chances are wrong for this segment...
    assert abs(fixed.accuracy - expected) < 0.01  # ...the calibrated estimate is not
    assert fixed.calibrated and not plain.calibrated
    assert (fixed.accuracy_high - fixed.accuracy_low) > (plain.accuracy_high - plain.accuracy_low)
