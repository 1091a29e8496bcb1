"""Every page renders; the Score flow works end to end through the real widgets."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import config
from core.synthetic import generate, sample_applicants
from core.variants import VARIANTS
from tests.app.conftest import open_page


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", ["score", "compare", "explain", "train", "history"])
def test_every_page_renders(app: AppTest, page: str) -> None:
    open_page(app, page)
    assert not app.exception
    assert app.title[0].value  # a real page, not an empty one


def test_sidebar_shows_model_and_demo_banner(app: AppTest) -> None:
    assert app.sidebar.selectbox(key="variant_choice").value in VARIANTS
    assert any("synthetic" in w.value for w in app.sidebar.warning)
    assert any(m.label == "Test accuracy" for m in app.sidebar.metric)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="score_upload").set_value((name, data, "text/csv"))
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


def test_good_file_gives_results_and_download(app: AppTest) -> None:
    data = sample_applicants(80, random_state=5).to_csv(index=False).encode()
    upload(app, "applicants.csv", data)
    assert metric(app, "Accepted") == "80"
    results = table_with(app, "success_probability", "selected")
    assert len(results) == 80
    assert {"success_probability", "selected", "reasons"} <= set(results.columns)
    assert results["success_probability"].is_monotonic_decreasing
    assert results["reasons"].str.contains("the chance by").any()
    assert any(b.proto.label.startswith("Download scored") for b in app.get("download_button"))


def test_bad_file_gives_report_not_traceback(app: AppTest) -> None:
    raw = sample_applicants(30, random_state=6).astype(str)
    raw.loc[[2, 7], "STATUS"] = "maybe"
    raw.loc[9, "ASK_AMT"] = "-300"
    upload(app, "messy.csv", raw.to_csv(index=False).encode())
    assert metric(app, "Rejected") == "3" and metric(app, "Accepted") == "27"
    reasons = table_with(app, "reason", "rows")
    assert reasons["rows"].sum() == 3
    rejected = table_with(app, "line", "reason", "STATUS")
    assert sorted(rejected["line"]) == [4, 9, 11]


def test_not_a_csv_is_one_message(app: AppTest) -> None:
    upload(app, "picture.png", b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    assert any("PNG image" in e.value for e in app.error)
    with pytest.raises(KeyError):
        table_with(app, "success_probability")


def test_missing_column_is_named(app: AppTest) -> None:
    data = sample_applicants(10).drop(columns=["ASK_AMT"]).to_csv(index=False).encode()
    upload(app, "short.csv", data)
    assert any("ASK_AMT" in e.value and "missing" in e.value for e in app.error)


def test_threshold_and_budget_change_the_selection(app: AppTest) -> None:
    upload(app, "a.csv", sample_applicants(60, random_state=2).to_csv(index=False).encode())
    low = int(metric(app, "Recommended"))
    app.slider(key="score_threshold").set_value(0.95).run()
    high = int(metric(app, "Recommended"))
    assert high < low
    app.radio(key="score_mode").set_value("Budget").run()
    app.number_input(key="score_budget").set_value(20000.0).run()
    chosen = table_with(app, "success_probability", "selected")
    picked = chosen[chosen["selected"] == 1]
    assert pd.to_numeric(picked["ASK_AMT"]).sum() <= 20000
    assert int(metric(app, "Recommended")) == len(picked)


def test_labelled_batch_shows_accuracy(app: AppTest) -> None:
    upload(app, "labelled.csv", generate(120, random_state=12).to_csv(index=False).encode())
    assert any(s.value.startswith("Accuracy on this batch") for s in app.subheader)


def test_record_batch_then_history(app: AppTest) -> None:
    upload(app, "a.csv", config.SAMPLE_APPLICANTS.read_bytes())
    app.button(key="score_record").click().run()
    assert any("Recorded as batch" in s.value for s in app.success)
    open_page(app, "history")
    table = table_with(app, "recorded", "rows", "id")
    assert len(table) == 1 and table.loc[0, "rows"] == 300


def test_compare_shows_all_variants(app: AppTest) -> None:
    open_page(app, "compare")
    table = table_with(app, "variant", "accuracy")
    assert list(table["variant"]) == list(VARIANTS)
    assert len(app.get("plotly_chart")) >= 6


def test_explain_page_what_if(app: AppTest) -> None:
    open_page(app, "explain")
    before = next(m for m in app.metric if m.label == "Chance of success")
    app.number_input(key="whatif_0_ASK_AMT").set_value(5_000_000.0).run()
    after = next(m for m in app.metric if m.label == "Chance of success")
    assert not app.exception
    assert before.value != after.value or before.delta != after.delta


def test_train_page_trains_in_background(app: AppTest, home) -> None:
    from core import jobs

    open_page(app, "train")
    app.session_state["train_max_epochs"] = 2
    app.multiselect(key="train_variants").set_value(["baseline"]).run()
    history = generate(400, random_state=21).to_csv(index=False).encode()
    app.file_uploader(key="train_upload").set_value(("history.csv", history, "text/csv")).run()
    old_version = pd.read_json(io.StringIO((home / "models/baseline/meta.json").read_text()), typ="series")[
        "version"
    ]
    app.button(key="train_start").click().run()
    jobs.wait(120)
    assert jobs.current_job().status == "done", jobs.current_job().error
    new_version = pd.read_json(io.StringIO((home / "models/baseline/meta.json").read_text()), typ="series")[
        "version"
    ]
    assert new_version != old_version
    open_page(app, "compare")
    assert "baseline" in list(table_with(app, "variant", "accuracy")["variant"])


def test_choosing_a_model_in_the_sidebar_scores_with_it(app: AppTest) -> None:
    app.sidebar.selectbox(key="variant_choice").set_value("baseline").run()
    assert app.session_state["variant"] == "baseline"
    upload(app, "a.csv", sample_applicants(20, random_state=3).to_csv(index=False).encode())
    assert app.session_state["variant"] == "baseline"
    assert app.sidebar.selectbox(key="variant_choice").value == "baseline"
    assert any("baseline-" in c.value for c in app.sidebar.caption)
    _key, result = app.session_state["score_result"]
    assert result.variant == "baseline"


def test_override_in_history_shows_in_batch_and_download(app: AppTest) -> None:
    from core import storage

    upload(app, "a.csv", sample_applicants(15, random_state=4).to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    open_page(app, "history")
    first = storage.list_batches()[0]
    original, _ = storage.batch_files(first.id)
    app.number_input(key="override_row").set_value(3)
    app.radio(key="override_decision").set_value("Do not fund")
    app.text_area(key="override_reason").set_value("Funded twice this year already")
    next(b for b in app.button if b.label == "Save override").click().run()
    assert not app.exception
    rows = table_with(app, "override_decision", "override_reason")
    assert rows.loc[2, "override_decision"] == "0" and rows.loc[2, "override_by"] == "local"
    assert rows.loc[2, "override_reason"] == "Funded twice this year already"
    assert storage.batch_files(first.id)[0] == original  # the first-produced results never change
