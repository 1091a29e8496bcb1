"""The review queue end to end through the real widgets: build, assign, resolve -> override; counts."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from core import storage
from core.synthetic import generate
from tests.app.conftest import open_page, shown
from tests.app.test_pages import metric, table_with, upload


def test_queue_resolution_becomes_the_override_and_history_counts_it(app: AppTest) -> None:
    raw = generate(50, random_state=61, with_target=False)
    raw.loc[3, "EIN"] = raw.loc[4, "EIN"]  # lines 5 and 6 share an EIN: queued as duplicates
    upload(app, "queue.csv", raw.to_csv(index=False).encode())
    app.button(key="score_record").click().run()
    batch_id = storage.list_batches()[0].id
    open_page(app, "review")
    app.button(key="review_build").click().run()
    assert not app.exception
    queued = storage.list_review_items(batch_id)
    assert {5, 6} <= set(queued["source_line"])
    assert app.success[0].value.startswith(f"{len(queued)} rows added to the queue")
    assert metric(app, "Open") == f"{len(queued):,}"
    five = int(queued.set_index("source_line").loc[5, "id"])
    app.selectbox(key="review_item").set_value(five)
    app.text_input(key="review_assignee").set_value("bo")
    app.button(key="review_assign").click().run()
    assert storage.list_review_items(batch_id).set_index("id").loc[five, "assigned_to"] == "bo"
    # the decision that changes line 5's recommendation, so the resolution becomes its override
    was = int(storage.results_with_overrides(batch_id).set_index("source_line").loc["5", "recommended"])
    flip = "decline" if was else "approve"
    app.selectbox(key="review_item").set_value(five)
    app.radio(key="review_decision").set_value(flip)
    next(b for b in app.button if b.label == "Resolve").click().run()  # no reason: refused
    assert [shown(e.value) for e in app.error] == ["A review resolution needs a reason."]
    assert app.radio(key="review_decision").value == flip  # the refused submit kept the choice
    app.text_area(key="review_reason").set_value("same organisation applied twice")
    next(b for b in app.button if b.label == "Resolve").click().run()
    assert not app.exception
    assert metric(app, "Resolved") == "1"
    words = ("not recommended", "recommended") if was == 0 else ("recommended", "not recommended")
    assert shown(app.success[0].value).endswith(
        f": {flip}. It is now the row's override in History (was {words[0]}, now {words[1]})."
    )
    assert app.text_area(key="review_reason").value == ""  # a saved resolution empties the reason
    current = storage.results_with_overrides(batch_id).set_index("source_line")
    assert current.loc["5", "override"] == flip
    assert current.loc["5", "override_reason"] == "review: same organisation applied twice"
    assert current.loc["5", "final_decision"] == 1 - was
    open_page(app, "history")
    listing = table_with(app, "review open", "review resolved")
    assert listing.loc[0, "review resolved"] == 1
    assert listing.loc[0, "review open"] == len(queued) - 1
