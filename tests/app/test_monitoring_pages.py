"""The data-check panel and the estimate on Score; outcomes and the trend on History (real widgets)."""

from __future__ import annotations

import io

import pandas as pd
from streamlit.testing.v1 import AppTest

from core import batch, monitoring, storage
from core.registry import live_version, load_bundle
from core.synthetic import generate
from tests.app.conftest import open_page, open_section, shown
from tests.app.test_pages import metric, table_with, upload


def test_a_shifted_file_fails_its_data_checks_with_the_values_named(app: AppTest) -> None:
    raw = generate(300, random_state=21, with_target=False)
    raw.loc[raw.index % 3 == 0, "CLASSIFICATION"] = "C9999"
    upload(app, "shifted.csv", raw.to_csv(index=False).encode())
    checks = table_with(app, "check", "status", "never_seen_in_training").set_index("check")
    assert checks.loc["CLASSIFICATION", "status"] == "🔴 Fail"
    assert checks.loc["CLASSIFICATION", "never_seen_in_training"] == "C9999 (100)"
    assert checks.loc["AFFILIATION", "status"] == "🟢 OK"
    errors = [shown(e.value) for e in app.error]
    assert any(e.startswith("Fail: ") and "CLASSIFICATION" in e for e in errors)
    assert "Data checks failed for this batch: treat this estimate as unreliable." in [
        w.value for w in app.warning
    ]


def test_the_estimate_follows_the_decision(app: AppTest) -> None:
    raw = generate(200, random_state=22, with_target=False)
    upload(app, "clean.csv", raw.to_csv(index=False).encode())
    # the same file scored in core by the live version: the page shows its calibrated estimate
    scored = batch.score_upload(load_bundle(None, live_version()), raw.to_csv(index=False).encode(), "c.csv")
    results = table_with(app, "source_line", "recommended").set_index("source_line")
    shown_decision = results.loc[scored.source_lines, "recommended"].to_numpy(dtype=bool)
    expected = batch.estimate_of(scored, shown_decision)
    assert expected.calibrated is True
    assert metric(app, "Expected accuracy") == f"{expected.accuracy:.1%}"
    said = [shown(c.value) for c in app.caption if shown(c.value).startswith("Expected accuracy of this")]
    assert len(said) == 1
    assert "recalibrated on its evaluation rows (rows it never trained on)" in said[0]
    app.slider(key="score_threshold").set_value(0.8).run()
    moved = batch.estimate_of(scored, scored.probabilities >= 0.8)
    assert metric(app, "Expected accuracy") == f"{moved.accuracy:.1%}"
    assert metric(app, "90% interval") == f"{moved.accuracy_low:.1%} – {moved.accuracy_high:.1%}"


def test_outcomes_attached_on_history_show_beside_the_estimate(app: AppTest) -> None:
    labelled = generate(90, random_state=23)
    upload(app, "round.csv", labelled.drop(columns=["IS_SUCCESSFUL"]).to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    open_page(app, "history")
    listing = table_with(app, "data checks", "estimated accuracy")
    record = storage.list_batches()[0]
    stored = record.monitoring_data()
    assert listing.loc[0, "data checks"] == monitoring.STATUS_WORDS[stored["check"]["status"]]
    assert listing.loc[0, "estimated accuracy"] == stored["estimate"]["accuracy"]
    outcomes = labelled[["EIN", "IS_SUCCESSFUL"]].to_csv(index=False).encode()
    app.file_uploader(key="history_outcomes_file").set_value(("outcomes.csv", outcomes, "text/csv")).run()
    app.button(key="history_outcomes_attach").click().run()
    assert not app.exception
    results = pd.read_csv(io.BytesIO(storage.batch_files(record.id)[0]))
    realized = (results["recommended"] == labelled["IS_SUCCESSFUL"]).mean()
    assert metric(app, "Realized accuracy") == f"{realized:.1%}"
    assert metric(app, "Estimated at scoring") == f"{stored['estimate']['accuracy']:.1%}"
    assert any(
        shown(s.value).startswith("Outcomes attached: 90 applicants matched on EIN") for s in app.success
    )
    open_section(app, "history_trend_open")
    trend = table_with(app, "estimated_accuracy", "realized_accuracy")
    assert trend.loc[0, "realized_accuracy"] == round(realized, 6)
