"""The review queue: rows of recorded batches that need a human look before the decision stands.

A row is queued when any of these holds (its ``why`` lists which):

* **near the line** — its chance is within ``band`` (default 5 points) of the batch's decision line
  (the threshold; for a budget rule, the chance at which the budget ran out);
* **challenger disagrees** — a chosen challenger version, scoring the same row, decides otherwise at
  the same line;
* **first-time organisation near the line** — its organisation is not in the scoring version's
  training data and its chance is within twice the band;
* **data-check warning** — it holds a value never seen in the scoring version's training data;
* **duplicate** — its EIN appears on another row of the batch, or it repeats an earlier row in EIN,
  NAME and the nine fields (``core.record.duplicate_rows``, the Score page's warning too).

Each item is assigned to a person and resolved with approve, decline or keep and a reason; the
resolution becomes the row's override (``core.storage.resolve_review``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core import storage
from core.errors import BadRequest
from core.record import RecordedBatch, duplicate_rows, load_batch
from core.schema import ID_FIELD

DEFAULT_BAND = 0.05
RULES = {
    "near": "near the line",
    "challenger": "challenger disagrees",
    "first_time": "first-time organisation near the line",
    "unseen": "data-check warning (a value never seen in training)",
    "duplicate": "duplicate",
}


@dataclass(frozen=True)
class QueueResult:
    batch_id: str
    line: float  # the decision line used
    added: int
    by_rule: dict[str, int]


def decision_line(batch: RecordedBatch) -> float:
    """The batch's decision line: its threshold, or (budget) the lowest chance it funded."""
    record = batch.record
    if record.mode == "threshold" and record.threshold is not None:
        return float(record.threshold)
    p = batch.probabilities
    funded = p[batch.recommended]
    return float(funded.min()) if len(funded) else float(p.max())


def queue_rows(
    batch: RecordedBatch,
    line: float,
    band: float,
    bundle: object | None,
    challenger: object | None = None,
) -> dict[str, np.ndarray]:
    """Which rows each rule picks (boolean masks over the batch's rows). Values are judged as
    validation normalised them when the file was scored (``t3`` is ``T3``)."""
    p = batch.probabilities
    rec = batch.recommended
    picks = {"near": np.abs(p - line) <= band}
    features = batch.features
    where = features.index.to_numpy()
    if challenger is not None and len(features):
        theirs = np.zeros(batch.n, dtype=bool)
        theirs[where] = challenger.predict_proba(features) >= line
        picks["challenger"] = batch.valid & (theirs != rec)
    if bundle is not None and len(features):
        first = np.zeros(batch.n, dtype=bool)
        first[where] = ~bundle.is_seen(features)
        picks["first_time"] = first & (np.abs(p - line) <= 2 * band)
        picks["unseen"] = batch.unseen_values(bundle.known_values)
    repeated, identical = duplicate_rows(batch.rows)
    picks["duplicate"] = repeated | identical
    return picks


def build_queue(
    batch_id: str,
    band: float = DEFAULT_BAND,
    bundle: object | None = None,
    challenger: object | None = None,
    url: str | None = None,
) -> QueueResult:
    """Queue a recorded batch's rows that need a human look (rows already queued stay as they are)."""
    if not 0 <= float(band) <= 0.5:
        raise BadRequest("The band around the line is between 0 and 50 points.")
    batch = load_batch(batch_id, url)
    line = decision_line(batch)
    picks = queue_rows(batch, line, float(band), bundle, challenger)
    lines = batch.source_lines
    items = []
    for i in range(batch.n):
        why = [RULES[k] for k, mask in picks.items() if mask[i]]
        if why:
            items.append((int(lines[i]), "; ".join(why)))
    added = storage.add_review_items(batch_id, items, url)
    return QueueResult(batch_id, line, added, {RULES[k]: int(m.sum()) for k, m in picks.items()})


def queue_table(batch_id: str, url: str | None = None) -> pd.DataFrame:
    """The queue of a batch joined with the rows' EIN, NAME, chance and current decision."""
    items = storage.list_review_items(batch_id, url)
    current = storage.results_with_overrides(batch_id, url)
    wanted = ["source_line", ID_FIELD, "NAME", "success_probability", "recommended", "final_decision"]
    keep = [c for c in wanted if c in current]
    rows = current[keep].assign(source_line=current["source_line"].astype(int))
    table = items.merge(rows, on="source_line", how="left")
    cols = ["id", "source_line", ID_FIELD, "NAME", "success_probability", "recommended", "final_decision",
            "why", "status", "assigned_to", "decision", "reason", "resolved_by", "resolved_at"]  # fmt: skip
    return table[[c for c in cols if c in table]]
