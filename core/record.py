"""The record of a batch as one typed object, and the actions on it that the page and the CLI share.

:func:`load_batch` is the one way to read a recorded batch back: the stored results (exactly as
first produced), the current decision of every row after overrides, and the application fields
normalised exactly as validation normalised them when the file was scored (``t3`` is ``T3``,
``Jan-99`` the income band it means). The review queue, the report, outcome joins, the groups and
History all read it; nothing else re-parses stored CSVs.

:func:`override` is the only way to change a decision: the line must be in the batch, the reason
not blank, and the decision must change something. :func:`resolve_review` closes a review item; the
resolution becomes the row's override only when it changes the row's decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core import storage
from core.errors import BadRequest
from core.schema import (
    ID_FIELD,
    NAME_FIELD,
    REQUIRED_FIELDS,
    TARGET,
    ValidationReport,
    validate,
)

SOURCE_LINE = "source_line"
PROBABILITY = "success_probability"
DECISION_WORDS = {"approve": 1, "decline": 0, "undo": -1}


@dataclass
class RecordedBatch:
    """A recorded batch read back: its record, its rows and their current decisions."""

    record: storage.BatchRecord
    rows: pd.DataFrame  # stored results as text + override columns (storage.results_with_overrides)
    features: pd.DataFrame  # the application fields normalised as validation does (index = row position)
    valid: np.ndarray  # rows whose stored cells validate (every row of a batch scored by this software)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def source_lines(self) -> np.ndarray:
        key = SOURCE_LINE if SOURCE_LINE in self.rows else "row"
        return self.rows[key].astype(int).to_numpy()

    @property
    def probabilities(self) -> np.ndarray:
        return self.rows[PROBABILITY].astype(float).to_numpy()

    @property
    def recommended(self) -> np.ndarray:
        """The rule's recommendation as recorded (before overrides)."""
        return self.rows["recommended"].astype(int).to_numpy() == 1

    @property
    def final(self) -> np.ndarray:
        """The decision after overrides."""
        return self.rows["final_decision"].astype(int).to_numpy() == 1

    @property
    def asks(self) -> np.ndarray:
        return self.features["ASK_AMT"].reindex(range(self.n)).fillna(0).to_numpy(dtype=float)

    def text(self, column: str) -> pd.Series:
        return (
            self.rows[column].astype(str) if column in self.rows else pd.Series([""] * self.n, dtype=object)
        )

    def position(self, line: int) -> int:
        """The row position of a source line (BadRequest when the batch has no such line)."""
        hit = np.flatnonzero(self.source_lines == int(line))
        if not len(hit):
            raise BadRequest(f"Line {line} is not a row of batch {self.id} (rejected rows have no decision).")
        return int(hit[0])

    def unseen_values(self, known_values: dict[str, list[str]]) -> np.ndarray:
        """Rows holding a value the scoring version never saw in training, judged on the normalised
        values exactly as the Score page's validation warnings judge them."""
        report = validated(self.rows, known_values)
        flagged = set(report.warnings.loc[report.warnings["field"] != "ASK_AMT", "line"].astype(int))
        return np.isin(np.arange(self.n) + 2, list(flagged))

    def outcome_labels(self, url: str | None = None) -> np.ndarray | None:
        """IS_SUCCESSFUL of the current outcomes per row (NaN where unmatched); None when none arrived."""
        arrived = storage.outcomes_frame(self.id, url)
        if arrived is None:
            return None
        lookup = dict(zip(arrived[SOURCE_LINE].astype(int), arrived[TARGET].astype(float)))
        return pd.Series(self.source_lines).map(lookup).to_numpy(dtype=float)


def validated(rows: pd.DataFrame, known_values: dict[str, list[str]] | None = None) -> ValidationReport:
    """Validation of stored rows' application cells (line = row position + 2, as in a one-chunk file)."""
    cols = [c for c in rows.columns if c in (*REQUIRED_FIELDS, NAME_FIELD, ID_FIELD)]
    return validate(rows[cols].reset_index(drop=True), known_values=known_values)


def load_batch(batch_id: str, url: str | None = None) -> RecordedBatch:
    """A recorded batch, typed: the one loader of stored results."""
    record = storage.get_batch(batch_id, url)
    rows = storage.results_with_overrides(batch_id, url)
    report = validated(rows)
    valid = np.zeros(len(rows), dtype=bool)
    valid[report.accepted.index.to_numpy()] = True
    return RecordedBatch(record, rows, report.accepted, valid)


def duplicate_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose EIN appears more than once, rows identical to an earlier row in EIN, NAME and the
    nine application fields). The Score page's warning and the review queue both use this."""
    n = len(frame)
    if ID_FIELD in frame:
        ein = frame[ID_FIELD].astype("str").str.strip()
        repeated = (ein.duplicated(keep=False) & (ein != "")).to_numpy()
    else:
        repeated = np.zeros(n, dtype=bool)
    cols = [c for c in (ID_FIELD, NAME_FIELD, *REQUIRED_FIELDS) if c in frame]
    if n and cols:
        cells = pd.DataFrame({c: frame[c].astype("str").str.strip() for c in cols})
        same = cells.duplicated(keep="first").to_numpy()
    else:
        same = np.zeros(n, dtype=bool)
    return repeated, same


# -- overrides -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverrideDone:
    batch_id: str
    source_line: int
    ein: str
    name: str
    decision: str  # approve / decline / undo
    before: str  # the decision before it: "recommended" / "not recommended"
    after: str

    def sentence(self) -> str:
        who = f"line {self.source_line} · EIN {self.ein or '(none)'} · {self.name or '(no name)'}"
        if self.decision == "undo":
            return f"Override undone for {who}: back to the model's decision, {self.after}."
        return f"Override saved for {who}: {self.decision} (was {self.before}, now {self.after})."


def _word(value: bool) -> str:
    return "recommended" if value else "not recommended"


def override(
    batch_id: str, line: int, decision: str, reason: str, user: str, url: str | None = None
) -> OverrideDone:
    """Change one applicant's decision (approve / decline), or undo its override, with a reason.

    Refused (BadRequest) when the line is not in the batch, the reason is blank, the decision is the
    applicant's current one, or there is no override to undo."""
    if decision not in DECISION_WORDS:
        raise BadRequest("An override decision is approve, decline or undo.")
    if not str(reason or "").strip():
        raise BadRequest("An override needs a reason.")
    if not str(user or "").strip():
        raise BadRequest("An override needs a user name.")
    batch = load_batch(batch_id, url)
    i = batch.position(int(line))
    row = batch.rows.iloc[i]
    current = bool(batch.final[i])
    after = bool(batch.recommended[i]) if decision == "undo" else decision == "approve"
    # the rules (a real change; an override to undo) are checked in the write's own transaction, so
    # an override someone saved meanwhile counts
    storage.add_override(
        batch_id,
        int(line),
        DECISION_WORDS[decision],
        reason,
        user,
        url,
        recommended=bool(batch.recommended[i]),
        who=f"line {int(line)} ({row.get(NAME_FIELD, '') or 'no name'})",
    )
    return OverrideDone(
        batch_id, int(line), str(row.get(ID_FIELD, "")), str(row.get(NAME_FIELD, "")), decision,
        _word(current), _word(after),
    )  # fmt: skip


@dataclass
class ReviewDone:
    """What resolving a review item did, for the confirmation."""

    source_line: int
    ein: str
    name: str
    decision: str  # approve / decline / keep
    before: str  # the row's decision before: "recommended" / "not recommended"
    after: str
    overridden: bool  # whether the resolution was recorded as the row's override

    def sentence(self) -> str:
        who = f"line {self.source_line} · EIN {self.ein or '(none)'} · {self.name or '(no name)'}"
        verdict = "keep the model's recommendation" if self.decision == "keep" else self.decision
        head = f"Resolved {who}: {verdict}."
        if not self.overridden:
            return f"{head} The row was already {self.after}, so no override was recorded."
        if self.decision == "keep":
            return f"{head} Its override is undone: back to the model's decision, {self.after}."
        return f"{head} It is now the row's override in History (was {self.before}, now {self.after})."


def resolve_review(item_id: int, decision: str, reason: str, user: str, url: str | None = None) -> ReviewDone:
    """Resolve a queued row (approve / decline / keep) with a reason. The resolution is kept on the
    item; it becomes the row's override only when it changes the row's current decision (checked in
    the write's own transaction)."""
    item = storage.review_item(item_id, url)
    batch = load_batch(item["batch_id"], url)
    line = int(item["source_line"])
    i = batch.position(line)
    row = batch.rows.iloc[i]
    before = bool(batch.final[i])
    recommended = bool(batch.recommended[i])
    overridden = storage.resolve_review(item_id, decision, reason, user, url, recommended=recommended)
    after = (recommended if decision == "keep" else decision == "approve") if overridden else before
    return ReviewDone(
        line, str(row.get(ID_FIELD, "")), str(row.get(NAME_FIELD, "")), decision,
        _word(before), _word(after), overridden,
    )  # fmt: skip


# -- history for the CLI --------------------------------------------------------------------------
def batch_summary(record: storage.BatchRecord, n_overrides: int, n_outcomes: int) -> dict:
    """What ``history list`` says of a batch."""
    return {
        "id": record.id,
        "created_at": record.created_at.isoformat(),
        "user": record.user,
        "file_name": record.file_name,
        "file_sha256": record.file_sha256,
        "rows": record.rows,
        "accepted": record.accepted,
        "rejected": record.rejected,
        "warned": record.warned,
        "version": record.version,
        "live": None if record.live is None else bool(record.live),
        "rule": {"mode": record.mode, "threshold": record.threshold, "budget": record.budget},
        "selected": record.selected,
        "overrides": n_overrides,
        "outcomes": n_outcomes,
    }


def history_list(url: str | None = None) -> list[dict]:
    """Every recorded batch, newest first."""
    records = storage.list_batches(url)
    counts = storage.override_counts(url)
    outcome_counts = storage.outcome_counts(url)
    return [batch_summary(r, counts.get(r.id, 0), outcome_counts.get(r.id, 0)) for r in records]


def history_show(batch_id: str, url: str | None = None) -> dict:
    """One batch: its summary, every override (with the applicant) and every outcomes set."""
    batch = load_batch(batch_id, url)
    made = storage.list_overrides(batch_id, url)
    lines = batch.source_lines
    eins = dict(zip(lines, batch.text(ID_FIELD)))
    names = dict(zip(lines, batch.text(NAME_FIELD)))
    overrides = []
    for k, o in made.iterrows():
        if int(o["decision"]) < 0:  # an undo: shown as ``undone`` on the overrides before it
            continue
        line = int(o["row"])
        later = made.loc[k + 1 :]
        undone = bool(((later["row"] == o["row"]) & (later["decision"] == -1)).any())
        overrides.append(
            {
                "source_line": line,
                "EIN": eins.get(line, ""),
                "NAME": names.get(line, ""),
                "decision": storage.OVERRIDE_WORDS[int(o["decision"])],
                "reason": o["reason"],
                "user": o["user"],
                "at": pd.Timestamp(o["created_at"]).isoformat(),
                "undone": undone,
            }
        )
    sets = storage.list_outcomes(batch_id, url)
    outcomes = [
        {
            "attached_at": s.created_at.isoformat(),
            "user": s.user,
            "file_name": s.file_name,
            "n_matched": s.summary.get("n_matched"),
            "accuracy": s.summary.get("accuracy"),
            "replaced": s.replaced,
            "replaced_at": s.replaced_at.isoformat() if s.replaced_at else None,
        }
        for s in sets
    ]
    out = batch_summary(batch.record, len(overrides), len(outcomes))
    out["overrides"], out["outcomes"] = overrides, outcomes
    return out
