"""The applicant contract: which columns exist, what values they take, and row validation.

Validation never raises for bad rows: it returns a report (accepted rows, rejected rows
with their line number and reason, warnings) so staff see every row accounted for.
Problems with the file as a whole are raised as :class:`FileError` with one clear message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import FileError

__all__ = ["FileError"]

ID_FIELD = "EIN"
NAME_FIELD = "NAME"
TARGET = "IS_SUCCESSFUL"

CATEGORICAL_FIELDS = [
    "APPLICATION_TYPE",
    "AFFILIATION",
    "CLASSIFICATION",
    "USE_CASE",
    "ORGANIZATION",
    "INCOME_AMT",
]
FLAG_FIELDS = ["STATUS", "SPECIAL_CONSIDERATIONS"]
NUMERIC_FIELDS = ["ASK_AMT"]
REQUIRED_FIELDS = [
    "APPLICATION_TYPE",
    "AFFILIATION",
    "CLASSIFICATION",
    "USE_CASE",
    "ORGANIZATION",
    "STATUS",
    "INCOME_AMT",
    "SPECIAL_CONSIDERATIONS",
    "ASK_AMT",
]
OPTIONAL_FIELDS = [ID_FIELD, NAME_FIELD]
ALL_COLUMNS = [ID_FIELD, NAME_FIELD, *REQUIRED_FIELDS, TARGET]

# Value sets of the Alphabet Soup history. A value outside them is accepted with a
# warning (the model treats it as its "other" bucket), never rejected.
KNOWN_VALUES: dict[str, list[str]] = {
    "APPLICATION_TYPE": [
        "T3",
        "T4",
        "T6",
        "T5",
        "T19",
        "T8",
        "T7",
        "T10",
        "T9",
        "T13",
        "T12",
        "T2",
        "T25",
        "T14",
        "T29",
        "T15",
        "T17",
    ],
    "AFFILIATION": ["Independent", "CompanySponsored", "Family/Parent", "National", "Regional", "Other"],
    "USE_CASE": ["Preservation", "ProductDev", "CommunityServ", "Heathcare", "Other"],
    "ORGANIZATION": ["Trust", "Association", "Co-operative", "Corporation"],
    "INCOME_AMT": [
        "0",
        "1-9999",
        "10000-24999",
        "25000-99999",
        "100000-499999",
        "1M-5M",
        "5M-10M",
        "10M-50M",
        "50M+",
    ],
    "STATUS": ["0", "1"],
    "SPECIAL_CONSIDERATIONS": ["N", "Y"],
}
CLASSIFICATION_PATTERN = re.compile(r"^C\d{4}$")

# Spreadsheets turn the income bracket "1-9999" into a date; map the usual renderings back.
INCOME_REPAIRS = {
    "JAN-99": "1-9999",
    "JAN-9999": "1-9999",
    "9999-01-01": "1-9999",
    "1/1/9999": "1-9999",
    "01/01/9999": "1-9999",
}

FIELD_LABELS = {
    "APPLICATION_TYPE": "Application type",
    "AFFILIATION": "Affiliation",
    "CLASSIFICATION": "Classification",
    "USE_CASE": "Use case",
    "ORGANIZATION": "Organisation type",
    "STATUS": "Active status",
    "INCOME_AMT": "Income bracket",
    "SPECIAL_CONSIDERATIONS": "Special considerations",
    "ASK_AMT": "Amount asked",
    "NAME": "Organisation name",
}


COLUMN_NOTES = (
    "Headers and listed values may differ in case ('ask amt', 't3'). A value outside a list is accepted "
    "with a warning and scored as the model's 'other'. Extra columns are ignored."
)


def column_guide() -> pd.DataFrame:
    """The columns an applicant file has: whether each is needed, what it holds, the values accepted
    (as ``validate`` checks them); ``COLUMN_NOTES`` says what holds for all of them."""
    known = lambda col: ", ".join(KNOWN_VALUES[col])  # noqa: E731
    rows = [
        (ID_FIELD, "optional", "Row id, shown with the results; never used to score", "any text"),
        (NAME_FIELD, "optional", "Organisation name; models that use it look up the organisation's earlier "
         "applications and its name's words", "any text; blank: a first-time organisation"),
        ("APPLICATION_TYPE", "required", FIELD_LABELS["APPLICATION_TYPE"],
         known("APPLICATION_TYPE")),
        ("AFFILIATION", "required", FIELD_LABELS["AFFILIATION"], known("AFFILIATION")),
        ("CLASSIFICATION", "required", FIELD_LABELS["CLASSIFICATION"],
         "C and four digits, e.g. C1000; rare ones are scored as 'other'"),
        ("USE_CASE", "required", FIELD_LABELS["USE_CASE"], known("USE_CASE")),
        ("ORGANIZATION", "required", FIELD_LABELS["ORGANIZATION"], known("ORGANIZATION")),
        ("STATUS", "required", FIELD_LABELS["STATUS"], "0 or 1"),
        ("INCOME_AMT", "required", FIELD_LABELS["INCOME_AMT"],
         known("INCOME_AMT") + " (a spreadsheet's date for 1-9999 is repaired)"),
        ("SPECIAL_CONSIDERATIONS", "required", FIELD_LABELS["SPECIAL_CONSIDERATIONS"], "Y or N"),
        ("ASK_AMT", "required", FIELD_LABELS["ASK_AMT"] + " in dollars",
         "a number of 0 or more; $ and thousands commas are accepted"),
        (TARGET, "optional", "Outcome, when known: never used to score; gives the batch's accuracy",
         "0 or 1"),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["column", "needed", "what it holds", "values accepted"])


MALFORMED = "_FIELD_COUNT"  # set by the reader on rows with more fields than the header


@dataclass
class ValidationReport:
    """Outcome of validating one table: every input row is in exactly one of accepted/rejected."""

    accepted: pd.DataFrame  # typed, clean rows; index = original row position
    rejected: pd.DataFrame  # columns: line, reason, then the raw input columns
    warnings: pd.DataFrame  # columns: line, field, message
    n_input: int
    extra_columns: list[str] = field(default_factory=list)

    @property
    def n_accepted(self) -> int:
        return len(self.accepted)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)

    @property
    def n_warned(self) -> int:
        return int(self.warnings["line"].nunique()) if len(self.warnings) else 0

    def summary(self) -> dict:
        """Counts for a report header; accepted + rejected always equals the input rows."""
        return {
            "rows": self.n_input,
            "accepted": self.n_accepted,
            "rejected": self.n_rejected,
            "with_warnings": self.n_warned,
            "extra_columns_ignored": list(self.extra_columns),
        }

    def input_rows(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The accepted rows exactly as the user's file had them (reader's hidden column dropped)."""
        return raw.loc[self.accepted.index].drop(columns=[MALFORMED], errors="ignore")

    @classmethod
    def concat(cls, reports: list[ValidationReport]) -> ValidationReport:
        """One report for a file validated chunk by chunk."""
        if len(reports) == 1:
            return reports[0]
        extra = list(dict.fromkeys(c for r in reports for c in r.extra_columns))
        return cls(
            pd.concat([r.accepted for r in reports]),
            pd.concat([r.rejected for r in reports], ignore_index=True),
            pd.concat([r.warnings for r in reports], ignore_index=True),
            sum(r.n_input for r in reports),
            extra,
        )

    def reasons(self) -> pd.DataFrame:
        """Rejection reasons grouped with counts, most common first."""
        if self.rejected.empty:
            return pd.DataFrame({"reason": [], "rows": []})
        parts = self.rejected["reason"].str.split("; ").explode()
        out = parts.value_counts().rename_axis("reason").reset_index(name="rows")
        return out


def normalise_header(name: object) -> str:
    """'  ask amt ' -> 'ASK_AMT': people retype headers with spaces and lower case."""
    text = str(name).replace("\ufeff", "").strip().upper()
    return re.sub(r"[\s\-]+", "_", text)


def check_duplicates(columns: list[str]) -> None:
    """Raise FileError naming columns that appear twice (after header normalisation)."""
    seen: set[str] = set()
    dups = sorted({c for c in columns if c in seen or seen.add(c)})
    if dups:
        raise FileError(f"Duplicate column names: {', '.join(dups)}. Each column must appear once.")


def check_columns(columns: list[str], *, need_target: bool = False) -> list[str]:
    """Raise FileError for duplicate or missing columns; return the extra (ignored) ones."""
    check_duplicates(columns)
    required = REQUIRED_FIELDS + ([TARGET] if need_target else [])
    missing = [c for c in required if c not in columns]
    if missing:
        raise FileError(
            f"Required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}. "
            f"Expected columns: {', '.join(required)} (EIN and NAME optional)."
        )
    return [c for c in columns if c not in ALL_COLUMNS]


# Spelled out rather than \s, which would send every cell through Python's re.
_MONEY_STRIP = "[ \t\n\r\x0b\x0c\xa0\u2009\u202f$,€£']"


def parse_amounts(text: pd.Series) -> pd.Series:
    """'$1,250' -> 1250.0; NaN where the cell is not a finite non-negative number."""
    cleaned = text.astype("string").fillna("").str.replace(_MONEY_STRIP, "", regex=True)
    values = pd.to_numeric(cleaned.astype(object).where(cleaned != "", None), errors="coerce")
    values = values.astype(float)
    bad = ~np.isfinite(values) | (values < 0)
    return values.mask(bad)


_STATUS = {"0": "0", "1": "1", "0.0": "0", "1.0": "1"}
_YN = {"Y": "Y", "N": "N", "YES": "Y", "NO": "N"}
_TARGET = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}


_UNSEEN_NOTE = "' never seen in training; treated as 'other'"


def _got(what: str, values: pd.Series) -> Callable[[pd.Series], pd.Series]:
    """A message quoting each flagged row's own cell, built only for flagged rows."""
    return lambda mask: what + " (got '" + values[mask].str.slice(0, 30) + "')"


def validate(
    raw: pd.DataFrame,
    *,
    known_values: dict[str, list[str]] | None = None,
    ask_range: tuple[float, float] | None = None,
    need_target: bool = False,
    first_line: int = 2,
) -> ValidationReport:
    """Check each row of a raw (all-text) table against the contract, vectorised.

    ``known_values`` are the categories the model saw in training (defaults to the
    declared value sets); ``ask_range`` the training range of ASK_AMT. ``line`` is the row
    number as a spreadsheet shows it (header = 1); ``first_line`` lets chunks continue it.
    """
    raw = raw.copy()
    raw.columns = [normalise_header(c) for c in raw.columns]
    ragged = raw.pop(MALFORMED) if MALFORMED in raw.columns else None
    extra = check_columns(list(raw.columns), need_target=need_target)
    known = known_values or KNOWN_VALUES
    n = len(raw)
    lines = pd.Series(np.arange(first_line, first_line + n), index=raw.index)
    present = REQUIRED_FIELDS + [c for c in OPTIONAL_FIELDS + [TARGET] if c in raw.columns]
    text = {c: raw[c].astype("string").fillna("").str.strip() for c in present}
    reason = pd.Series("", index=raw.index, dtype="string")

    def flag(mask: pd.Series, message: Callable[[pd.Series], pd.Series] | str) -> None:
        mask = mask.fillna(False).astype(bool)
        if mask.any():  # most files are clean: build messages only for the flagged rows
            reason[mask] = reason[mask] + (message(mask) if callable(message) else message) + "; "

    if ragged is not None:
        width = len(raw.columns)
        ragged = ragged.astype("string").fillna("")
        flag(ragged != "", lambda m: "row has " + ragged[m] + f" fields but the header has {width}")
    out = pd.DataFrame(index=raw.index)
    for col in CATEGORICAL_FIELDS:
        values = text[col]
        if col == "INCOME_AMT":
            repaired = values.str.upper().map(INCOME_REPAIRS)
            values = repaired.fillna(values).astype("string")
        # 't3' or 'independent' mean the known value: match case-insensitively.
        canon = {v.upper(): v for v in KNOWN_VALUES.get(col, [])}
        upper = values.str.upper()
        base = upper if col == "CLASSIFICATION" else values
        if canon:
            mapped = upper.astype(object).map(canon)
            base = mapped.where(mapped.notna(), base.astype(object))
        out[col] = base.astype("string")
    for col in REQUIRED_FIELDS:
        flag(text[col] == "", f"{col} is missing")
    status = text["STATUS"].str.upper().map(_STATUS)
    flag((text["STATUS"] != "") & status.isna(), _got("STATUS must be 0 or 1", text["STATUS"]))
    special = text["SPECIAL_CONSIDERATIONS"].str.upper().map(_YN)
    flag(
        (text["SPECIAL_CONSIDERATIONS"] != "") & special.isna(),
        _got("SPECIAL_CONSIDERATIONS must be Y or N", text["SPECIAL_CONSIDERATIONS"]),
    )
    ask = parse_amounts(text["ASK_AMT"])
    flag(
        (text["ASK_AMT"] != "") & ask.isna(),
        _got("ASK_AMT must be a non-negative number", text["ASK_AMT"]),
    )
    out["STATUS"] = status
    out["SPECIAL_CONSIDERATIONS"] = special
    out["ASK_AMT"] = ask
    if NAME_FIELD in text:
        out[NAME_FIELD] = text[NAME_FIELD]
    if ID_FIELD in text:
        out[ID_FIELD] = text[ID_FIELD]

    warn_parts: list[pd.DataFrame] = []

    def warn(mask: pd.Series, col: str, message: Callable[[pd.Series], pd.Series] | str) -> None:
        mask = mask.fillna(False).astype(bool)
        if mask.any():
            msg = message(mask) if callable(message) else message
            warn_parts.append(pd.DataFrame({"line": lines[mask], "field": col, "message": msg}))

    if TARGET in text:
        target = text[TARGET].map(_TARGET)
        bad_target = target.isna()
        if need_target:
            flag(bad_target, "IS_SUCCESSFUL must be 0 or 1")
        else:
            warn(bad_target & (text[TARGET] != ""), TARGET, "not 0/1; ignored for batch metrics")
        out[TARGET] = target

    ok = (reason == "").to_numpy()
    okm = pd.Series(ok, index=raw.index)
    for col in CATEGORICAL_FIELDS:
        allowed = known.get(col)
        if allowed is not None:
            unseen = ~out[col].isin(allowed)
        else:
            unseen = ~out[col].str.fullmatch(CLASSIFICATION_PATTERN.pattern)
        warn(
            okm & unseen,
            col,
            lambda m, col=col: "value '" + out[col][m].str.slice(0, 40) + _UNSEEN_NOTE,
        )
    if ask_range is not None:
        lo, hi = ask_range
        outside = (ask < lo) | (ask > hi)
        warn(okm & outside, "ASK_AMT", f"outside the training range {lo:,.0f} to {hi:,.0f}")

    accepted = out.loc[ok].copy()
    accepted["STATUS"] = accepted["STATUS"].astype(int)
    accepted["ASK_AMT"] = accepted["ASK_AMT"].astype(float)
    for col in CATEGORICAL_FIELDS + ["SPECIAL_CONSIDERATIONS", NAME_FIELD, ID_FIELD]:
        if col in accepted:
            accepted[col] = accepted[col].astype(object)
    if TARGET in accepted:
        accepted[TARGET] = accepted[TARGET].astype(int) if need_target else accepted[TARGET].astype("Int64")
    rejected = raw.loc[~ok].copy()
    rejected.insert(0, "reason", reason[~ok].str.removesuffix("; ").astype(object))
    rejected.insert(0, "line", lines[~ok].to_numpy())
    if warn_parts:
        warnings = pd.concat(warn_parts, ignore_index=True).sort_values("line", kind="stable")
        warnings = warnings.reset_index(drop=True)
    else:
        warnings = pd.DataFrame({"line": pd.Series(dtype=int), "field": [], "message": []})
    return ValidationReport(accepted, rejected, warnings, n, extra)
