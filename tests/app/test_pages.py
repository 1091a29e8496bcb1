"""Every page renders; the Score flow works end to end through the real widgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import config, registry, storage
from core.synthetic import generate, sample_applicants
from tests.app.conftest import open_page, open_section, shown

LEAD = ["source_line", "EIN", "NAME", "success_probability", "recommended", "reasons"]


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success] + [c.value for c in at.caption]
    return "\n".join(shown(p) for p in parts)


PAGE_TEXT = {
    "score": "Upload a file or try the bundled sample",
    "compare": "Pairwise",
    "models": "Model card",
    "explain": "What if?",
    "train": "Training data",
    "history": "No batch recorded yet",
    "review": "No batch recorded yet. Score a file and record it",
}


@pytest.mark.parametrize("page", list(PAGE_TEXT))
def test_every_page_renders(app: AppTest, page: str) -> None:
    open_page(app, page)
    visible = texts(app) + "\n".join(s.value for s in app.subheader) + "\n".join(r.label for r in app.radio)
    assert PAGE_TEXT[page] in visible, visible[:500]


def test_sidebar_shows_the_live_model_and_demo_banner(app: AppTest, home) -> None:
    live = registry.live_version(home / "models")
    assert any(shown(c.value).startswith(live) for c in app.sidebar.caption)
    assert any("synthetic" in w.value for w in app.sidebar.warning)
    assert app.sidebar.selectbox(key="sidebar_version").value == live  # the local user is an analyst


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    """Upload through the Score page's uploader (its key changes once a file is scored)."""
    (uploader,) = at.file_uploader
    uploader.set_value((name, data, "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table_with(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first dataframe on the page that has these columns (dataframes carry no key here)."""
    for df in at.dataframe:
        value = df.value
        if isinstance(value, pd.DataFrame) and set(columns) <= set(value.columns):
            return value
    raise KeyError(columns)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_before_an_upload_the_score_page_offers_the_column_table(app: AppTest) -> None:
    from core.schema import COLUMN_NOTES, column_guide

    assert app.expander[0].label == "The columns of a file and the values each accepts"
    assert len(app.dataframe) == 1  # open until a file is uploaded
    assert COLUMN_NOTES in [c.value for c in app.caption]
    pd.testing.assert_frame_equal(app.dataframe[0].value, column_guide())
    open_section(app, "score_columns_open", state=False)
    assert not app.dataframe and COLUMN_NOTES not in [c.value for c in app.caption]
    upload(app, "applicants.csv", sample_applicants(20, random_state=6).to_csv(index=False).encode())
    assert "The columns of a file and the values each accepts" not in [e.label for e in app.expander]


def test_good_file_gives_decision_first_results_and_download(app: AppTest, home) -> None:
    data = sample_applicants(80, random_state=5).to_csv(index=False).encode()
    upload(app, "applicants.csv", data)
    assert metric(app, "Accepted") == "80"
    results = table_with(app, "success_probability", "recommended")
    assert list(results.columns[:6]) == LEAD and len(results) == 80
    assert results["source_line"].tolist() == list(range(2, 82))  # file order by default
    assert (results["reasons"].str.contains("the chance by")).all()
    assert set(results["model_version"]) == {registry.live_version(home / "models")}
    assert not results["recommended"].all()
    assert [b.proto.label for b in app.get("download_button")] == [
        "Download scored applicants (CSV)",
        "Download decline reasons and suggestions (CSV)",
    ]
    app.radio(key="score_order").set_value("Most likely first").run()
    assert table_with(app, "success_probability", "recommended")[
        "success_probability"
    ].is_monotonic_decreasing


def test_a_scored_upload_is_let_go_and_its_results_stay_until_cleared(app: AppTest) -> None:
    import hashlib

    from core.batch import HeldFile
    from core.schema import column_guide

    data = sample_applicants(80, random_state=5).to_csv(index=False).encode()
    upload(app, "applicants.csv", data)
    (uploader,) = app.file_uploader
    assert (uploader.key, uploader.value) == ("score_upload_1", None)  # a fresh, empty uploader
    held = app.session_state["score_file"]
    assert isinstance(held, HeldFile)
    assert (held.name, held.sha256, held.size, held.data()) == (
        "applicants.csv", hashlib.sha256(data).hexdigest(), len(data), data
    )  # fmt: skip
    assert len(held.packed) < len(data) // 2
    assert "Results below: applicants.csv (0.0 MB). A new file replaces them." in texts(app)
    assert metric(app, "Accepted") == "80"
    app.radio(key="score_order").set_value("Most likely first").run()  # a rerun without the upload
    assert len(table_with(app, "success_probability", "recommended")) == 80
    upload(app, "other.csv", sample_applicants(12, random_state=8).to_csv(index=False).encode())
    assert metric(app, "Accepted") == "12"
    assert app.session_state["score_file"].name == "other.csv"
    assert app.file_uploader[0].key == "score_upload_2"
    app.button(key="score_clear").click().run()
    assert "Upload a file or try the bundled sample" in texts(app)
    assert not app.metric
    [table] = app.dataframe  # only the table of columns an empty page offers
    pd.testing.assert_frame_equal(table.value, column_guide())
    assert "score_file" not in app.session_state and "score" not in app.session_state


def test_the_held_file_is_scored_again_when_another_version_is_chosen(app: AppTest, home) -> None:
    models = home / "models"
    live = registry.live_version(models)
    other = registry.resolve_version(models, variant="baseline")
    upload(app, "a.csv", sample_applicants(20, random_state=3).to_csv(index=False).encode())
    first = table_with(app, "success_probability", "recommended")
    assert set(first["model_version"]) == {live}
    app.sidebar.selectbox(key="sidebar_version").set_value(other).run()
    again = table_with(app, "success_probability", "recommended")
    assert set(again["model_version"]) == {other}
    assert again["source_line"].tolist() == first["source_line"].tolist() == list(range(2, 22))
    assert not np.allclose(again["success_probability"], first["success_probability"])


def test_the_server_copy_of_an_upload_is_dropped() -> None:
    def script() -> None:
        import streamlit as st
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        from pages.common import forget_upload

        up = st.file_uploader("File", key="f")
        if up is not None:
            ctx = get_script_run_ctx()
            before = len(ctx.uploaded_file_mgr.get_files(ctx.session_id, [up.file_id]))
            dropped = forget_upload(up)
            after = len(ctx.uploaded_file_mgr.get_files(ctx.session_id, [up.file_id]))
            st.text(f"{before} {dropped} {after} {forget_upload(up)}")

    at = AppTest.from_function(script)
    at.run()
    at.file_uploader(key="f").set_value(("x.csv", b"a,b\n1,2\n", "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text[0].value == "1 True 0 False"


def test_bad_file_gives_report_not_traceback(app: AppTest) -> None:
    raw = sample_applicants(30, random_state=6).astype(str)
    raw.loc[[2, 7], "STATUS"] = "maybe"
    raw.loc[9, "ASK_AMT"] = "-300"
    upload(app, "messy.csv", raw.to_csv(index=False).encode())
    assert metric(app, "Rejected") == "3" and metric(app, "Accepted") == "27"
    assert table_with(app, "reason", "rows")["rows"].sum() == 3
    open_section(app, "score_rejected_open")
    assert sorted(table_with(app, "source_line", "reason", "STATUS")["source_line"]) == [4, 9, 11]


def test_not_a_csv_is_one_message(app: AppTest) -> None:
    upload(app, "picture.png", b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    assert [shown(e.value) for e in app.error] == [
        "picture.png: This looks like a PNG image, not a CSV. Save or export the sheet as CSV and retry."
    ]
    with pytest.raises(KeyError):
        table_with(app, "success_probability")
    (uploader,) = app.file_uploader  # the failed file was let go as well
    assert (uploader.key, uploader.value) == ("score_upload_1", None)
    open_section(app, "score_columns_open")  # the message stays while the columns are looked up
    assert len(app.error) == 1 and "score_file" not in app.session_state
    upload(app, "good.csv", sample_applicants(10, random_state=2).to_csv(index=False).encode())
    assert not app.error and metric(app, "Accepted") == "10"


def test_missing_column_is_named(app: AppTest) -> None:
    data = sample_applicants(10).drop(columns=["ASK_AMT"]).to_csv(index=False).encode()
    upload(app, "short.csv", data)
    assert any("Required column missing: ASK_AMT" in shown(e.value) for e in app.error)


def test_threshold_and_budget_change_the_selection(app: AppTest) -> None:
    upload(app, "a.csv", sample_applicants(60, random_state=2).to_csv(index=False).encode())
    results = table_with(app, "success_probability", "recommended")
    low = int(metric(app, "Recommended"))
    assert low == int((results["success_probability"] >= 0.5).sum())
    app.slider(key="score_threshold").set_value(0.95).run()
    assert int(metric(app, "Recommended")) == int((results["success_probability"] >= 0.95).sum())
    app.radio(key="score_mode").set_value("Budget").run()
    assert any("Enter the total budget" in i.value for i in app.info)  # nothing chosen before an amount
    app.text_input(key="score_budget").set_value("20,000").run()
    chosen = table_with(app, "success_probability", "recommended")
    picked = chosen[chosen["recommended"] == 1]
    assert pd.to_numeric(picked["ASK_AMT"]).sum() <= 20000
    assert int(metric(app, "Recommended")) == len(picked)
    assert any("The budget ran out at a chance of" in shown(c.value) for c in app.caption)


def test_labelled_batch_shows_accuracy(app: AppTest) -> None:
    upload(app, "labelled.csv", generate(120, random_state=12).to_csv(index=False).encode())
    assert any(s.value.startswith("Accuracy on this batch") for s in app.subheader)


def test_recording_is_idempotent_and_its_confirmation_belongs_to_file_version_and_rule(app: AppTest) -> None:
    upload(app, "a.csv", config.SAMPLE_APPLICANTS.read_bytes())
    app.button(key="score_record").click().run()
    [batch] = storage.list_batches()
    assert [shown(s.value) for s in app.success] == [
        f"Recorded as batch {batch.id}. See History to re-download or override."
    ]
    app.slider(key="score_threshold").set_value(0.7).run()
    assert not app.success  # another rule: not recorded
    app.slider(key="score_threshold").set_value(0.5).run()
    app.button(key="score_record").click().run()  # the same file, version and rule again
    assert any(f"already recorded with this model version and rule, as batch {batch.id}" in shown(e.value)
               for e in app.error)  # fmt: skip
    assert len(storage.list_batches()) == 1
    open_page(app, "history")
    table = table_with(app, "recorded", "rows", "id")
    assert table["id"].tolist() == [batch.id] and table.loc[0, "rows"] == 300


def test_a_damaged_record_is_reported_on_history_and_score_and_kept(app: AppTest, home) -> None:
    damaged = b"not a database at all" * 100
    (home / "screening.db").write_bytes(damaged)
    storage.reset_engines()
    open_page(app, "history")
    [error] = [shown(e.value) for e in app.error]
    assert error.startswith(f"The batch record {home / 'screening.db'} is damaged (")
    assert error.endswith("It was kept as it is. Restore the latest backup with: python -m core restore")
    assert not app.dataframe  # no table of batches at all
    open_page(app, "score")
    upload(app, "a.csv", config.SAMPLE_APPLICANTS.read_bytes())
    assert metric(app, "Accepted") == "300"  # scoring does not need the record
    app.button(key="score_record").click().run()
    assert not app.exception and not app.success
    [error] = [shown(e.value) for e in app.error]
    assert error.startswith(f"The batch record {home / 'screening.db'} is damaged (")
    assert (home / "screening.db").read_bytes() == damaged  # kept, never recreated empty


def test_compare_shows_every_variant(app: AppTest, home) -> None:
    open_page(app, "compare")
    table = table_with(app, "variant", "accuracy")
    assert sorted(table["variant"]) == sorted(
        c.variant for c in registry.list_versions(home / "models")[0].values()
    )
    assert len(app.get("plotly_chart")) >= 6


def test_compare_pairwise_says_which_rows_and_counts_them(app: AppTest, home) -> None:
    from core import evaluation
    from core.registry import load_bundle

    open_page(app, "compare")
    a, b = app.selectbox(key="compare_a").value, app.selectbox(key="compare_b").value
    expected = evaluation.compare_versions(load_bundle(home / "models", a), load_bundle(home / "models", b))
    captions = [shown(c.value) for c in app.caption]
    said = [c for c in captions if c.startswith("On the ") and "only A is right" in c]
    assert said == [
        f"On the {expected['rows']:,} fixed evaluation rows (both versions scoring the same rows, neither "
        f"trained on them), only A is right on {expected['mcnemar']['only_a_right']:,} and only B on "
        f"{expected['mcnemar']['only_b_right']:,}. A p-value under 0.05 means the difference is unlikely "
        "to be chance."
    ]


def test_explain_what_if_shows_the_exact_new_chance(app: AppTest, home) -> None:
    from core.reading import read_table
    from core.schema import validate

    open_page(app, "explain")
    bundle = registry.load_bundle(home / "models", registry.live_version(home / "models"))
    first = validate(read_table(config.SAMPLE_APPLICANTS), known_values=bundle.known_values).accepted.iloc[
        [0]
    ]
    before = bundle.predict_proba(first)[0]
    after = bundle.predict_proba(first.assign(ASK_AMT=5_000_000.0))[0]
    app.number_input(key="whatif_0_ASK_AMT").set_value(5_000_000.0).run()
    chance = next(m for m in app.metric if m.label == "Chance of success")
    assert chance.value == f"{after:.1%}"
    assert chance.delta == f"{(after - before) * 100:+.1f} points"


def test_train_page_needs_a_data_choice_and_makes_a_candidate(app: AppTest, home) -> None:
    from core import jobs

    models = home / "models"
    live = registry.live_version(models)
    before = set(registry.list_versions(models)[0])
    open_page(app, "train")
    assert app.button(key="train_start").disabled  # no data chosen yet
    app.session_state["train_max_epochs"] = 2
    app.multiselect(key="train_variants").set_value(["baseline"]).run()
    app.radio(key="train_source").set_value("upload").run()
    history = generate(400, random_state=21).to_csv(index=False).encode()
    app.file_uploader(key="train_upload").set_value(("history.csv", history, "text/csv")).run()
    app.button(key="train_start").click().run()
    jobs.wait(120)
    assert jobs.current_job().status == "done", jobs.current_job().error
    new = set(registry.list_versions(models)[0]) - before
    assert len(new) == 1 and next(iter(new)).startswith("baseline-")
    assert registry.live_version(models) == live  # a candidate, never live by itself
    open_page(app, "models")
    [label] = [o for o in app.selectbox(key="models_candidate").options if o.startswith(next(iter(new)))]
    assert " · not live · acc " in label and label.endswith(" · real data")


def test_analyst_promotes_with_a_reason_and_rolls_back(app: AppTest, home) -> None:
    models = home / "models"
    live = registry.live_version(models)
    open_page(app, "models")
    candidate = app.selectbox(key="models_candidate").value
    assert candidate != live
    assert any(m.label == "Candidate accuracy" for m in app.metric)  # beside the live model
    next(b for b in app.button if b.label.startswith("Promote")).click().run()
    assert any("Promotion needs a reason" in shown(e.value) for e in app.error)
    assert registry.live_version(models) == live
    app.text_area(key="models_reason").set_value("Better on first-time organisations")
    next(b for b in app.button if b.label.startswith("Promote")).click().run()
    assert registry.live_version(models) == candidate
    assert any(f"Live model is now {candidate}" in shown(s.value) for s in app.success)
    app.text_area(key="models_reason").set_value("Staff reported odd scores")
    next(b for b in app.button if b.label.startswith("Roll back")).click().run()
    assert registry.live_version(models) == live
    events = registry.registry_events(models)
    assert [(e.action, e.user, e.reason) for e in events[1:]] == [
        ("promote", "local", "Better on first-time organisations"),
        ("rollback", "local", "Staff reported odd scores"),
    ]


def test_choosing_another_version_scores_with_it_and_the_record_says_not_live(app: AppTest, home) -> None:
    models = home / "models"
    other = registry.resolve_version(models, variant="baseline")
    assert other != registry.live_version(models)
    app.sidebar.selectbox(key="sidebar_version").set_value(other).run()
    assert any("Not the live model" in w.value for w in app.sidebar.warning)
    upload(app, "a.csv", sample_applicants(20, random_state=3).to_csv(index=False).encode())
    assert set(table_with(app, "success_probability", "recommended")["model_version"]) == {other}
    app.button(key="score_record").click().run()
    [rec] = storage.list_batches()
    assert (rec.version, rec.live) == (other, 0)


def test_override_by_applicant_shows_at_once_and_can_be_undone(app: AppTest) -> None:
    upload(app, "a.csv", sample_applicants(15, random_state=4).to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    open_page(app, "history")
    first = storage.list_batches()[0]
    original, _ = storage.batch_files(first.id)
    before = table_with(app, "override", "override_reason").set_index("source_line")
    was = int(before.loc["5", "recommended"])
    ein, name = before.loc["5", "EIN"], before.loc["5", "NAME"]
    app.selectbox(key="override_row").set_value(5)
    app.radio(key="override_decision").set_value("Decline (do not fund)" if was else "Approve (fund)")
    app.text_area(key="override_reason").set_value("Funded twice this year already")
    next(b for b in app.button if b.label == "Save override").click().run()
    assert not app.exception
    word, then, now = ("decline", "recommended", "not recommended") if was else (
        "approve", "not recommended", "recommended")  # fmt: skip
    assert [shown(s.value) for s in app.success] == [
        f"Override saved for line 5 · EIN {ein} · {name}: {word} (was {then}, now {now})."
    ]
    assert app.text_area(key="override_reason").value == ""  # a saved override starts the next one afresh
    rows = table_with(app, "override", "override_reason").set_index("source_line")
    assert rows.loc["5", "override"] == word and rows.loc["5", "final_decision"] == 1 - was
    assert (
        rows.loc["5", "override_by"] == "local"
        and rows.loc["5", "override_reason"] == "Funded twice this year already"
    )
    app.selectbox(key="override_row").set_value(5)
    app.radio(key="override_decision").set_value("Undo the override")
    app.text_area(key="override_reason").set_value("Entered on the wrong applicant")
    next(b for b in app.button if b.label == "Save override").click().run()
    rows = table_with(app, "override", "override_reason").set_index("source_line")
    assert rows.loc["5", "override"] == "none"
    assert rows.loc["5", "final_decision"] == int(rows.loc["5", "recommended"])
    assert storage.batch_files(first.id)[0] == original  # the first-produced results never change


def test_a_refused_override_keeps_the_choice_and_a_no_change_override_is_refused(app: AppTest) -> None:
    upload(app, "a.csv", sample_applicants(15, random_state=4).to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    open_page(app, "history")
    batch_id = storage.list_batches()[0].id
    rows = table_with(app, "override", "override_reason").set_index("source_line")
    picks = [int(v) for v in rows.index[rows["recommended"].astype(int) == 1] if int(v) != 2]
    assert picks  # a recommended applicant other than the form's first choice
    line = picks[0]
    app.selectbox(key="override_row").set_value(line)
    app.radio(key="override_decision").set_value("Decline (do not fund)")
    next(b for b in app.button if b.label == "Save override").click().run()  # no reason
    assert [shown(e.value) for e in app.error] == ["An override needs a reason."]
    assert app.selectbox(key="override_row").value == line  # what the person chose is still chosen
    assert app.radio(key="override_decision").value == "Decline (do not fund)"
    app.radio(key="override_decision").set_value("Approve (fund)")
    app.text_area(key="override_reason").set_value("strong references")
    next(b for b in app.button if b.label == "Save override").click().run()  # approve the recommended
    name = rows.loc[str(line), "NAME"]
    assert [shown(e.value) for e in app.error] == [
        f"line {line} ({name}) is already recommended; an override must change the decision. "
        "Nothing was saved."
    ]
    assert app.text_area(key="override_reason").value == "strong references"
    assert len(storage.list_overrides(batch_id)) == 0


def test_stored_counts_are_the_files_from_the_page(app: AppTest) -> None:
    raw = sample_applicants(40, random_state=9).astype(str)
    raw.loc[3, "STATUS"] = "9"  # rejected
    raw.loc[8, "ASK_AMT"] = "lots"  # rejected
    upload(app, "counts.csv", raw.to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    [record] = storage.list_batches()
    assert (record.rows, record.accepted, record.rejected) == (40, 38, 2)
    assert len(storage.stored_results(record.id)) == 38
    open_page(app, "history")
    table = table_with(app, "recorded", "rows", "id")
    assert (table.loc[0, "rows"], table.loc[0, "accepted"], table.loc[0, "rejected"]) == (40, 38, 2)


def test_duplicates_are_reported_with_their_lines(app: AppTest) -> None:
    raw = sample_applicants(30, random_state=7).astype(str)
    raw.loc[5, "EIN"] = raw.loc[2, "EIN"]  # a repeated EIN
    raw.loc[20] = raw.loc[10]  # an identical row
    upload(app, "dups.csv", raw.to_csv(index=False).encode())
    warnings = [shown(w.value) for w in app.warning]
    assert "Repeated EINs: 4 rows share an EIN with another row (first lines: 4, 7, 12, 22)." in warnings
    assert "Identical rows: 1 rows repeat an earlier row exactly (first lines: 22)." in warnings


def test_rows_the_live_model_trained_on_are_flagged(app: AppTest, home) -> None:
    from core.datasets import SYNTHETIC_ROWS, evaluation_mask

    history = generate(SYNTHETIC_ROWS, random_state=0)  # the demo history the test models trained on
    trained = history.loc[~evaluation_mask(history)].head(60)
    rows = pd.concat([trained, history.loc[evaluation_mask(history)].head(20)]).drop(
        columns=["IS_SUCCESSFUL"]
    )
    live = registry.load_bundle(home / "models", registry.live_version(home / "models"))
    assert live.card.final_fit is not None  # refitted: it learned from every non-evaluation row
    expected = 60
    upload(app, "history-rows.csv", rows.to_csv(index=False).encode())
    warnings = [shown(w.value) for w in app.warning]
    assert (
        f"{expected} of these rows are rows model version {live.version} learned from in training (every "
        "application field the same as a training row). Its chances for them are not forecasts: it has "
        "seen their outcomes. The accuracy estimate and any comparison with outcomes flatter it on them."
    ) in warnings
    upload(app, "fresh.csv", sample_applicants(30, random_state=8).to_csv(index=False).encode())
    assert not [w for w in app.warning if "learned from in training" in shown(w.value)]


def test_ein_recorded_in_the_last_year_is_flagged(app: AppTest) -> None:
    first = sample_applicants(20, random_state=7)
    upload(app, "first.csv", first.to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    later = sample_applicants(20, random_state=8)
    later.loc[3, "EIN"] = first.loc[0, "EIN"]
    upload(app, "later.csv", later.to_csv(index=False).encode())
    flagged = "1 applicants have an EIN that appears in a batch recorded in the last 365 days"
    assert any(flagged in shown(w.value) for w in app.warning)
    table = table_with(app, "EIN seen in the last year")
    assert table.loc[table["EIN seen in the last year"] == "yes", "source_line"].tolist() == [5]


def test_reasons_describe_the_name_never_show_it(app: AppTest) -> None:
    raw = sample_applicants(40, random_state=5)
    upload(app, "a.csv", raw.to_csv(index=False).encode())
    results = table_with(app, "success_probability", "reasons")
    for name, reason in zip(results["NAME"], results["reasons"]):
        assert str(name) not in reason
    assert results["reasons"].str.contains("organisation").any()


def test_budget_is_typed_with_separators_and_remembered_per_user(app: AppTest, home) -> None:
    upload(app, "a.csv", sample_applicants(60, random_state=2).to_csv(index=False).encode())
    app.radio(key="score_mode").set_value("Budget").run()
    app.text_input(key="score_budget").set_value("$1,250,000").run()
    assert "$1,250,000" in [c.value for c in app.caption]
    total = next(m for m in app.metric if m.label == "Total asked by recommended")
    assert total.help.startswith("$") and float(total.help[1:].replace(",", "")) <= 1_250_000
    again = AppTest.from_file(str(config.PROJECT_ROOT / "app.py"), default_timeout=180)
    again.run()
    upload(again, "a.csv", sample_applicants(60, random_state=2).to_csv(index=False).encode())
    again.radio(key="score_mode").set_value("Budget").run()
    assert again.text_input(key="score_budget").value == "$1,250,000"


def test_money_never_truncates() -> None:
    from core.text import compact_count, compact_money

    assert compact_money(18_991_150_123) == "$18.99 B"
    assert compact_money(2_500_000) == "$2.50 M"
    assert compact_money(12_500) == "$12,500"
    assert compact_count(1_234) == "1,234" and compact_count(1_234_567) == "1.23 M"


def test_what_if_treats_a_blank_name_as_no_name(app: AppTest, home) -> None:
    from core.reading import read_table
    from core.schema import validate

    models = home / "models"
    app.sidebar.selectbox(key="sidebar_version").set_value(
        registry.resolve_version(models, variant="tuned")
    ).run()
    open_page(app, "explain")
    bundle = registry.load_bundle(models, registry.resolve_version(models, variant="tuned"))
    first = validate(read_table(config.SAMPLE_APPLICANTS), known_values=bundle.known_values).accepted.iloc[
        [0]
    ]
    expected = bundle.predict_proba(first.assign(NAME=""))[0]
    app.text_input(key="whatif_0_NAME").set_value("").run()
    assert not app.error
    assert next(m for m in app.metric if m.label == "Chance of success").value == f"{expected:.1%}"


def get_bundle_for(scored):
    from pathlib import Path

    from core import config

    return registry.load_bundle(Path(config.models_dir()), scored.version)


def test_one_applicants_reasons_can_be_read_in_full(app: AppTest) -> None:
    from core import batch as batches
    from core.decisions import Rule
    from core.explain import FieldExplainer

    upload(app, "a.csv", sample_applicants(12, random_state=5).to_csv(index=False).encode())
    results = table_with(app, "success_probability", "reasons")
    row = int(results["success_probability"].idxmin())  # the least likely: not recommended
    assert not results.loc[row, "recommended"]
    open_section(app, "score_detail_open")
    app.selectbox(key="score_detail").set_value(row).run()
    bullets = [shown(m.value) for m in app.markdown if shown(m.value).startswith("- ")]
    scored = app.session_state["score"][1]
    selection = batches.decide(scored, Rule("threshold", threshold=scored.threshold))
    why_not, suggestion = batches.applicant_support(
        scored, selection, FieldExplainer(get_bundle_for(scored)), np.array([row])
    )
    expected = [f"- {p}" for p in results.loc[row, "reasons"].split("; ")]
    expected += [f"- {r}" for r in why_not[0] or ["No field lowered the chance noticeably."]]
    assert bullets == expected
    assert f"**What it would take:** {suggestion[0].text}" in [shown(m.value) for m in app.markdown]
    assert any(
        "not recommended" in shown(m.value) and "Chance of success" in shown(m.value) for m in app.markdown
    )
