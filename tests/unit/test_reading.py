"""Tolerant reading: encodings, delimiters, ragged rows, and not-a-CSV files."""

from __future__ import annotations

import pytest

from core.reading import read_table
from core.schema import FileError, validate
from core.synthetic import generate


def sample_csv(n: int = 6, sep: str = ",") -> str:
    return generate(n, random_state=2).to_csv(index=False, sep=sep)


def test_utf8_bom_and_latin1() -> None:
    df = generate(6, random_state=2)
    df.loc[2, "NAME"] = "CLÜB DES AMIS"
    text = df.to_csv(index=False)
    utf8 = read_table(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert validate(utf8).n_accepted == 6 and utf8.loc[2, "NAME"] == "CLÜB DES AMIS"
    assert next(iter(utf8.columns)) == "EIN"  # the BOM is not part of the first header
    table = read_table(text.encode("latin-1"))
    assert validate(table).n_accepted == 6
    assert table.loc[2, "NAME"] == "CLÜB DES AMIS"


def test_semicolon_delimiter() -> None:
    assert validate(read_table(sample_csv(sep=";").encode())).n_accepted == 6


def test_quoted_newline_inside_name() -> None:
    df = generate(3, random_state=2)
    df.loc[1, "NAME"] = "TWO\nLINES CLUB"
    table = read_table(df.to_csv(index=False).encode())
    assert len(table) == 3 and "\n" in table.loc[1, "NAME"]


def test_ragged_row_is_rejected_not_dropped() -> None:
    lines = sample_csv().splitlines()
    lines[3] += ",surplus,fields"
    report = validate(read_table("\n".join(lines).encode()))
    assert report.n_input == 6 and report.n_rejected == 1
    assert report.rejected.iloc[0]["line"] == 4
    assert "fields but the header has" in report.rejected.iloc[0]["reason"]


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"PK\x03\x04\x14\x00rest-of-xlsx", "Excel"),
        (b"\x89PNG\r\n\x1a\nxxxx", "PNG"),
        (b"abc\x00\x01\x02\x03 binary", "binary"),
        (b"just some words\nwithout delimiters\n", "header row"),
    ],
)
def test_not_a_csv_is_one_clear_error(blob: bytes, message: str) -> None:
    with pytest.raises(FileError, match=message):
        read_table(blob)


def test_header_only_is_a_file_error() -> None:
    with pytest.raises(FileError, match="no applicant rows"):
        read_table(sample_csv().splitlines()[0].encode() + b"\n")


def test_missing_file_is_a_file_error(tmp_path) -> None:
    with pytest.raises(FileError, match="not found"):
        read_table(tmp_path / "nope.csv")


def test_ragged_row_in_a_late_chunk_is_rejected_with_its_true_line() -> None:
    from core.reading import iter_chunks

    lines = generate(250, random_state=2).to_csv(index=False).splitlines()
    lines[231] += ",surplus,fields"  # data row 231 -> spreadsheet line 232
    data = "\n".join(lines).encode()
    reports = [validate(chunk, first_line=line) for line, chunk in iter_chunks(data, chunksize=100)]
    assert sum(r.n_input for r in reports) == 250
    rejected = [line for r in reports for line in r.rejected["line"]]
    assert rejected == [232]
    assert "row has 14 fields but the header has 12" in reports[-1].rejected["reason"].iloc[0]
