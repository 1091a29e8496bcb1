"""The hostile corpus through the Score page: a report whose counts add up, or one message."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import shown
from tests.app.test_pages import metric, upload
from tests.data.make_bad_files import BAD, EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_on_score_page(app: AppTest, name: str) -> None:
    upload(app, name, (BAD / name).read_bytes())
    assert not app.exception
    expected = EXPECTED[name]
    if expected[0] == "error":
        messages = [shown(e.value) for e in app.error]
        assert len(messages) == 1 and expected[1] in messages[0], messages
        assert not any(m.label == "Accepted" for m in app.metric)
        return
    _, accepted, rejected = expected
    assert metric(app, "Accepted") == f"{accepted:,}"
    assert metric(app, "Rejected") == f"{rejected:,}"
    assert int(metric(app, "Rows in file").replace(",", "")) == accepted + rejected


def test_file_over_the_upload_limit(app: AppTest) -> None:
    limit = app.get("markdown")[0].value  # the page states the limit
    assert "MB" in limit
    big = b"x" * (201 * 1024 * 1024)
    upload(app, "big.csv", big)
    assert [shown(e.value) for e in app.error] == [
        "big.csv is 201 MB, over the 200 MB upload limit. "
        "Split it, or use python -m core score, which streams files of any size."
    ]
