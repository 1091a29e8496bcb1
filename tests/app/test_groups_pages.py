"""Group rates on Score follow the decision; weak spots become cohorts that filter Compare and Explain."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import evaluation, groups, registry, storage
from core.synthetic import generate
from tests.app.conftest import open_page, open_section, shown
from tests.app.test_pages import table_with, upload


def group_row(at: AppTest, field: str, value: str) -> dict:
    table = table_with(at, "field", "value", "selection_rate", "ratio_to_highest")
    row = table[(table["field"] == field) & (table["value"] == value)]
    assert len(row) == 1, table
    return row.iloc[0].to_dict()


def test_group_rates_on_score_follow_the_threshold(app: AppTest) -> None:
    raw = generate(400, random_state=41, with_target=False)
    upload(app, "g.csv", raw.to_csv(index=False).encode())
    with pytest.raises(KeyError):  # the section is closed: nothing of it is computed or drawn
        group_row(app, "AFFILIATION", "Independent")
    open_section(app, "score_groups_open")
    results = table_with(app, "success_probability", "recommended")
    independent = (raw["AFFILIATION"] == "Independent").to_numpy()
    row = group_row(app, "AFFILIATION", "Independent")
    assert row["n"] == int(independent.sum())
    assert row["recommended"] == int(results["recommended"].to_numpy()[independent].sum())
    app.slider(key="score_threshold").set_value(0.7).run()
    moved = group_row(app, "AFFILIATION", "Independent")
    p = table_with(app, "success_probability", "recommended")["success_probability"].to_numpy()
    assert moved["recommended"] == int((p[independent] >= 0.7).sum())
    assert moved["selection_rate"] == round((p[independent] >= 0.7).mean(), 6)


def test_group_rates_on_history_follow_an_override(app: AppTest) -> None:
    raw = generate(60, random_state=42, with_target=False)
    upload(app, "o.csv", raw.to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    open_page(app, "history")
    open_section(app, "history_groups_open")
    before = group_row(app, "ORGANIZATION", str(raw.loc[3, "ORGANIZATION"]))
    results = table_with(app, "override", "final_decision").set_index("source_line")
    was = int(results.loc["5", "final_decision"])
    app.selectbox(key="override_row").set_value(5)
    app.radio(key="override_decision").set_value("Decline (do not fund)" if was else "Approve (fund)")
    app.text_area(key="override_reason").set_value("checked by hand")
    next(b for b in app.button if b.label == "Save override").click().run()
    assert not app.exception
    after = group_row(app, "ORGANIZATION", str(raw.loc[3, "ORGANIZATION"]))
    assert after["recommended"] == before["recommended"] + (-1 if was else 1)
    assert storage.list_overrides(storage.list_batches()[0].id)["row"].tolist() == [5]


def test_a_weak_spot_saved_as_cohort_filters_compare(app: AppTest, home) -> None:
    open_page(app, "compare")
    live = registry.live_version(home / "models")
    bundle = registry.load_bundle(home / "models", live)
    values, preds = groups.test_split_values(bundle)
    p = preds["success_probability"].to_numpy()
    _, spots = groups.analyse(
        values, p >= bundle.threshold, p, preds["IS_SUCCESSFUL"].to_numpy(dtype=float), with_weak_spots=True
    )
    shown_spots = table_with(app, "slice", "error_rate", "lift")
    assert shown_spots["slice"].tolist() == [s.describe() for s in spots]
    app.text_input(key="compare_cohort_name").set_value("First weak spot")
    next(b for b in app.button if b.label == "Save cohort").click().run()
    assert not app.exception
    assert groups.list_cohorts() == {"First weak spot": spots[0].rule}
    open_page(app, "compare")
    app.selectbox(key="compare_cohort").set_value("First weak spot").run()
    assert not app.exception
    table = table_with(app, "variant", "accuracy").set_index("version")
    expected = evaluation.cohort_test_report(bundle, spots[0].rule)
    assert expected["n"] == spots[0].n
    assert table.loc[live, "accuracy"] == expected["accuracy"]
    assert expected["accuracy"] == pytest.approx(1 - spots[0].error_rate, abs=1e-6)


def test_a_cohort_filters_explain(app: AppTest, home) -> None:
    from core import config
    from core.reading import read_table
    from core.schema import validate

    groups.save_cohort("Independents", {"AFFILIATION": "Independent"})
    open_page(app, "explain")
    app.selectbox(key="explain_cohort").set_value("Independents").run()
    assert not app.exception
    bundle = registry.load_bundle(home / "models", registry.live_version(home / "models"))
    rows = validate(read_table(config.SAMPLE_APPLICANTS), known_values=bundle.known_values).accepted
    rows = rows.iloc[:500]
    inside = int((rows["AFFILIATION"] == "Independent").sum())
    note = next(shown(i.value) for i in app.info if i.value.startswith("Cohort"))
    assert note == f"Cohort Independents: Affiliation = Independent. {inside:,} of {len(rows):,} applicants."
    labels = app.selectbox(key="explain_pick").options
    assert len(labels) == inside
