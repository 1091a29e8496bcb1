"""The applicant contract: each reject reason, warnings, and file-level errors."""

from __future__ import annotations

import pandas as pd
import pytest

from core.reading import read_table
from core.schema import REQUIRED_FIELDS, FileError, validate
from core.synthetic import generate


def raw_rows(n: int = 5) -> pd.DataFrame:
    return generate(n, random_state=1).astype(str)


def test_valid_rows_are_accepted_and_typed() -> None:
    report = validate(raw_rows(20))
    assert report.n_accepted == 20 and report.n_rejected == 0
    assert report.accepted["ASK_AMT"].dtype == float
    assert set(report.accepted["STATUS"]) <= {0, 1}


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("AFFILIATION", "", "AFFILIATION is missing"),
        ("ASK_AMT", "", "ASK_AMT is missing"),
        ("ASK_AMT", "lots", "ASK_AMT must be a non-negative number"),
        ("ASK_AMT", "-5", "ASK_AMT must be a non-negative number"),
        ("ASK_AMT", "inf", "ASK_AMT must be a non-negative number"),
        ("STATUS", "2", "STATUS must be 0 or 1"),
        ("SPECIAL_CONSIDERATIONS", "maybe", "SPECIAL_CONSIDERATIONS must be Y or N"),
    ],
)
def test_each_reject_reason(column: str, value: str, reason: str) -> None:
    raw = raw_rows()
    raw.loc[2, column] = value
    report = validate(raw)
    assert report.n_rejected == 1 and report.n_accepted == 4
    row = report.rejected.iloc[0]
    assert row["line"] == 4  # header is line 1, first data row line 2
    assert reason in row["reason"]


def test_several_problems_in_one_row_are_all_named() -> None:
    raw = raw_rows()
    raw.loc[0, ["STATUS", "USE_CASE"]] = ["x", ""]
    reason = validate(raw).rejected.iloc[0]["reason"]
    assert "STATUS" in reason and "USE_CASE is missing" in reason


def test_money_formats_and_spreadsheet_repairs_are_accepted() -> None:
    raw = raw_rows()
    raw.loc[0, "ASK_AMT"] = "$1,250"
    raw.loc[1, "INCOME_AMT"] = "Jan-99"
    raw.loc[2, "APPLICATION_TYPE"] = " t3 "
    raw.loc[3, "SPECIAL_CONSIDERATIONS"] = "n"
    report = validate(raw)
    assert report.n_rejected == 0
    acc = report.accepted
    assert acc.loc[0, "ASK_AMT"] == 1250.0
    assert acc.loc[1, "INCOME_AMT"] == "1-9999"
    assert acc.loc[2, "APPLICATION_TYPE"] == "T3"
    assert acc.loc[3, "SPECIAL_CONSIDERATIONS"] == "N"


def test_unseen_category_and_ask_range_are_warnings_not_rejects() -> None:
    raw = raw_rows()
    raw.loc[0, "AFFILIATION"] = "Martian"
    raw.loc[1, "ASK_AMT"] = "99999999999"
    report = validate(raw, ask_range=(5000, 1e9))
    assert report.n_rejected == 0
    fields = set(report.warnings["field"])
    assert {"AFFILIATION", "ASK_AMT"} <= fields
    assert "treated as 'other'" in report.warnings.set_index("field").loc["AFFILIATION", "message"]


def test_headers_with_spaces_and_lower_case() -> None:
    raw = raw_rows()
    raw.columns = [f"  {c.lower().replace('_', ' ')} " for c in raw.columns]
    assert validate(raw).n_accepted == 5


def test_missing_required_column_is_named() -> None:
    raw = raw_rows().drop(columns=["ASK_AMT", "STATUS"])
    with pytest.raises(FileError, match="STATUS, ASK_AMT"):
        validate(raw)


def test_duplicate_columns_are_a_file_error() -> None:
    data = b"ASK_AMT," + ",".join(REQUIRED_FIELDS).encode() + b"\n1," + b",".join([b"x"] * 9) + b"\n"
    with pytest.raises(FileError, match="Duplicate column names: ASK_AMT"):
        validate(read_table(data))


def test_target_is_required_only_for_training() -> None:
    raw = raw_rows().drop(columns=["IS_SUCCESSFUL"], errors="ignore")
    assert validate(raw).n_accepted == 5
    with pytest.raises(FileError, match="IS_SUCCESSFUL"):
        validate(raw, need_target=True)


def test_extra_columns_are_reported_and_ignored() -> None:
    raw = raw_rows()
    raw["NOTES"] = "x"
    report = validate(raw)
    assert report.extra_columns == ["NOTES"]
    assert "NOTES" not in report.accepted


def test_counts_add_up_and_reasons_group() -> None:
    raw = raw_rows(50)
    raw.loc[::3, "STATUS"] = "9"
    report = validate(raw)
    assert report.n_accepted + report.n_rejected == 50
    grouped = report.reasons()
    assert grouped["rows"].sum() == report.n_rejected


def test_the_column_guide_lists_every_column_once_and_its_listed_values_pass_validation() -> None:
    from core.schema import KNOWN_VALUES, OPTIONAL_FIELDS, TARGET, column_guide

    guide = column_guide()
    assert guide["column"].tolist() == [*OPTIONAL_FIELDS, *REQUIRED_FIELDS, TARGET]
    needed = dict(zip(guide["column"], guide["needed"], strict=True))
    assert [c for c, n in needed.items() if n == "required"] == REQUIRED_FIELDS
    # every value the guide lists for a column is accepted without a warning
    accepted = dict(zip(guide["column"], guide["values accepted"], strict=True))
    for column, values in KNOWN_VALUES.items():
        listed = accepted[column]
        if column in ("STATUS", "SPECIAL_CONSIDERATIONS"):
            shown = listed.split(" or ")
        else:
            shown = listed.split(" (")[0].split(", ")
        assert sorted(shown) == sorted(values), column
        rows = raw_rows(len(shown))
        rows[column] = shown
        report = validate(rows)
        assert report.n_accepted == len(shown), column
        assert report.warnings.empty, column
    # and the documented spellings of the others
    rows = raw_rows(3)
    rows["CLASSIFICATION"] = ["C1000", "C2000", "c1200"]
    rows["ASK_AMT"] = ["$5,000", "0", "1'250"]
    report = validate(rows)
    assert report.n_accepted == 3
    assert report.accepted["ASK_AMT"].tolist() == [5000.0, 0.0, 1250.0]
    assert report.accepted["CLASSIFICATION"].tolist() == ["C1000", "C2000", "C1200"]
