"""Write the corpus of hostile and sloppy applicant files to tests/data/bad/.

Run from the project root: ``python tests/data/make_bad_files.py``. Every file is synthetic.
The outcome each one must produce is declared in ``EXPECTED`` (used by the tests):
("error", text in the one file-level message) or ("scored", accepted, rejected).
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.synthetic import generate, sample_applicants  # noqa: E402

BAD = Path(__file__).resolve().parent / "bad"


def _csv(frame, **kwargs) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode("utf-8")


def files() -> dict[str, bytes]:
    base = sample_applicants(20, random_state=99).astype(str)
    out: dict[str, bytes] = {}
    out["empty.csv"] = b""
    out["header_only.csv"] = _csv(base.iloc[:0])
    xlsx = io.BytesIO()
    with zipfile.ZipFile(xlsx, "w") as zf:
        for name, body in (("[Content_Types].xml", "<Types/>"), ("xl/workbook.xml", "<workbook/>")):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), body)  # reproducible bytes
    out["workbook.xlsx"] = xlsx.getvalue()
    out["image.png"] = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    out["random.bin"] = bytes((i * 7919 + 13) % 256 for i in range(4096))
    out["missing_column.csv"] = _csv(base.drop(columns=["CLASSIFICATION"]))
    dup = _csv(base).replace(b"USE_CASE", b"ASK_AMT", 1)
    out["duplicate_columns.csv"] = dup
    extra = base.assign(NOTES="call back", SCORE_BY_HAND="7")
    out["extra_columns.csv"] = _csv(extra)
    ask = base.copy()
    ask.loc[0, "ASK_AMT"] = "five thousand"
    ask.loc[1, "ASK_AMT"] = "-5000"
    ask.loc[2, "ASK_AMT"] = "$12,500"
    ask.loc[3, "ASK_AMT"] = "1,000,000"
    out["ask_amt_mixed.csv"] = _csv(ask)  # 2 rejected, 2 repaired
    status = base.copy()
    status.loc[[0, 1, 2], "STATUS"] = ["2", "yes", "-1"]
    out["status_not_binary.csv"] = _csv(status)
    blanks = base.copy()
    blanks.loc[4, "AFFILIATION"] = ""
    blanks.loc[5, "INCOME_AMT"] = "   "
    blanks.loc[6, ["USE_CASE", "ORGANIZATION"]] = ""
    out["blank_required.csv"] = _csv(blanks)
    unseen = base.copy()
    unseen.loc[0, "APPLICATION_TYPE"] = "T99"
    unseen.loc[1, "CLASSIFICATION"] = "C9999"
    unseen.loc[2, "AFFILIATION"] = "Interplanetary"
    out["unseen_categories.csv"] = _csv(unseen)
    latin = base.copy()
    latin.loc[0, "NAME"] = "CAFÉ DES ÉCOLES ASSOCIATION"
    out["latin1.csv"] = latin.to_csv(index=False).encode("latin-1")
    out["utf8_bom.csv"] = b"\xef\xbb\xbf" + _csv(latin)
    out["semicolon.csv"] = _csv(base, sep=";")
    quoted = base.copy()
    quoted.loc[3, "NAME"] = "FIRST LINE\nSECOND LINE, WITH COMMA"
    out["quoted_newline.csv"] = _csv(quoted)
    huge = base.copy()
    huge.loc[7, "NAME"] = "X" * 100_000
    out["huge_cell.csv"] = _csv(huge)
    out["with_target.csv"] = _csv(generate(40, random_state=98))
    formula = base.copy()
    formula.loc[0, "NAME"] = '=HYPERLINK("http://example.invalid","click")'
    out["formula_injection.csv"] = _csv(formula)
    ragged = _csv(base).decode().splitlines()
    ragged[5] += ",surplus,cells"
    out["ragged_row.csv"] = ("\n".join(ragged) + "\n").encode()
    lower = base.copy()
    lower.columns = [f" {c.lower()} " for c in lower.columns]
    out["lowercase_headers.csv"] = _csv(lower)
    return out


# name -> expected outcome of scoring through core and the Score page
EXPECTED: dict[str, tuple] = {
    "empty.csv": ("error", "empty"),
    "header_only.csv": ("error", "no applicant rows"),
    "workbook.xlsx": ("error", "Excel"),
    "image.png": ("error", "PNG"),
    "random.bin": ("error", "not a text CSV"),
    "missing_column.csv": ("error", "CLASSIFICATION"),
    "duplicate_columns.csv": ("error", "Duplicate column names: ASK_AMT"),
    "extra_columns.csv": ("scored", 20, 0),
    "ask_amt_mixed.csv": ("scored", 18, 2),
    "status_not_binary.csv": ("scored", 17, 3),
    "blank_required.csv": ("scored", 17, 3),
    "unseen_categories.csv": ("scored", 20, 0),
    "latin1.csv": ("scored", 20, 0),
    "utf8_bom.csv": ("scored", 20, 0),
    "semicolon.csv": ("scored", 20, 0),
    "quoted_newline.csv": ("scored", 20, 0),
    "huge_cell.csv": ("scored", 20, 0),
    "with_target.csv": ("scored", 40, 0),
    "formula_injection.csv": ("scored", 20, 0),
    "ragged_row.csv": ("scored", 19, 1),
    "lowercase_headers.csv": ("scored", 20, 0),
}


def main() -> None:
    BAD.mkdir(parents=True, exist_ok=True)
    for name, blob in files().items():
        (BAD / name).write_bytes(blob)
    print(f"wrote {len(EXPECTED)} files to {BAD}")


if __name__ == "__main__":
    main()
