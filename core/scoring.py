"""Scoring: validated applicants -> success probabilities, every row accounted for.

Output = every input column unchanged, plus ``success_probability`` and
``predicted_success`` at the bundle's threshold. Rejected rows go to a rejects report with
their line and reason; accepted + rejected always equals the input rows. Files are read in
chunks so a file of millions of rows runs in bounded memory. Text cells that a
spreadsheet would execute are neutralised in every CSV we write.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.evaluation import classification_metrics
from core.reading import iter_chunks
from core.registry import Bundle
from core.schema import TARGET, ValidationReport, validate

PROBABILITY = "success_probability"
PREDICTED = "predicted_success"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells starting with = + - @ (or tab/CR) with ' so spreadsheets show, not run, them."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            text = out[col].astype("string")
            risky = text.str.startswith(_FORMULA_START).fillna(False).astype(bool)
            if risky.any():
                out[col] = text.mask(risky, "'" + text).astype(object)
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """A formula-safe CSV as bytes (for downloads)."""
    return neutralise(frame).to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode("utf-8")


@dataclass
class ScoreResult:
    """Scored rows (input columns + probability + decision) and the validation report."""

    scored: pd.DataFrame
    report: ValidationReport
    variant: str
    version: str
    threshold: float

    def batch_metrics(self) -> dict | None:
        """Accuracy/AUC/confusion on this batch when it carries IS_SUCCESSFUL (never a feature)."""
        if TARGET not in self.report.accepted:
            return None
        labels = self.report.accepted[TARGET]
        mask = labels.notna().to_numpy()
        if mask.sum() == 0:
            return None
        y = labels[mask].astype(int).to_numpy()
        return classification_metrics(y, self.scored[PROBABILITY].to_numpy()[mask], self.threshold)


def score_frame(bundle: Bundle, raw: pd.DataFrame, first_line: int = 2) -> ScoreResult:
    """Validate a raw text table against the bundle's training values and score accepted rows."""
    report = validate(
        raw, known_values=bundle.known_values, ask_range=bundle.ask_range, first_line=first_line
    )
    features = report.accepted.drop(columns=[TARGET], errors="ignore")
    probs = bundle.predict_proba(features) if len(features) else np.empty(0)
    scored = report.input_rows(raw)
    scored[PROBABILITY] = np.round(probs, 6)
    scored[PREDICTED] = (probs >= bundle.threshold).astype(int)
    return ScoreResult(
        scored.reset_index(drop=True), report, bundle.variant, bundle.version, bundle.threshold
    )


def iter_scored(
    bundle: Bundle, source: str | Path | bytes, chunksize: int, progress: Callable[[int], None] | None = None
) -> Iterator[ScoreResult]:
    """Score a file chunk by chunk; row positions continue across chunks, so results and
    rejects line up with the file. ``progress`` gets the number of rows read so far."""
    offset = 0
    for line, chunk in iter_chunks(source, chunksize):
        chunk.index = range(offset, offset + len(chunk))
        offset += len(chunk)
        yield score_frame(bundle, chunk, first_line=line)
        if progress:
            progress(offset)


def score_source(
    bundle: Bundle,
    source: str | Path | bytes,
    chunksize: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score a whole file into one in-memory result (the app), with progress."""
    parts = list(iter_scored(bundle, source, chunksize, progress))
    report = ValidationReport.concat([p.report for p in parts])
    scored = pd.concat([p.scored for p in parts], ignore_index=True)
    return ScoreResult(scored, report, bundle.variant, bundle.version, bundle.threshold)


@dataclass
class FileScoreSummary:
    rows: int
    accepted: int
    rejected: int
    with_warnings: int
    variant: str
    version: str


def score_file(
    bundle: Bundle,
    source: str | Path | bytes,
    output: str | Path | io.TextIOBase,
    rejects: str | Path | None = None,
    chunksize: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> FileScoreSummary:
    """Score a CSV of any size chunk by chunk, writing results (and rejects) as it goes."""
    total = accepted = rejected = warned = 0
    is_path = isinstance(output, str | Path)
    out_fh = open(output, "w", newline="", encoding="utf-8") if is_path else output  # noqa: SIM115
    rej_fh = open(rejects, "w", newline="", encoding="utf-8") if rejects else None  # noqa: SIM115
    try:
        first = True
        for result in iter_scored(bundle, source, chunksize, progress):
            neutralise(result.scored).to_csv(out_fh, index=False, header=first)
            if rej_fh is not None:
                neutralise(result.report.rejected).to_csv(rej_fh, index=False, header=first)
            first = False
            total += result.report.n_input
            accepted += result.report.n_accepted
            rejected += result.report.n_rejected
            warned += result.report.n_warned
    finally:
        if is_path:
            out_fh.close()
        if rej_fh is not None:
            rej_fh.close()
    return FileScoreSummary(total, accepted, rejected, warned, bundle.variant, bundle.version)
