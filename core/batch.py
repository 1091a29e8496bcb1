"""The batch workflow, from uploaded bytes to a recorded batch; the Score page and the CLI both call it.

upload -> validate every row -> score with one model version -> choose the rows that get reasons
-> apply the decision rule -> the results file -> record. Every row keeps ``source_line`` (its
line in the uploaded file as a spreadsheet shows it, header = 1) from upload to record to
override. The results file has the same columns in the same order wherever it is made:

    source_line, EIN, NAME, success_probability, recommended, reasons,
    <the file's other columns, application fields first>, predicted_success, model_version

``recommended`` is the decision under the rule (threshold or budget); ``predicted_success`` is the
model's own call at its threshold, whatever the rule.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import decisions, storage
from core.errors import BadRequest
from core.reading import iter_chunks
from core.registry import Bundle
from core.schema import (
    ID_FIELD,
    MALFORMED,
    NAME_FIELD,
    REQUIRED_FIELDS,
    TARGET,
    ValidationReport,
    normalise_header,
    validate,
)
from core.scoring import PREDICTED, PROBABILITY, neutralise, to_csv_bytes

SOURCE_LINE = "source_line"
RECOMMENDED = "recommended"
REASONS = "reasons"
MODEL_VERSION = "model_version"
LEAD_COLUMNS = [SOURCE_LINE, ID_FIELD, NAME_FIELD, PROBABILITY, RECOMMENDED, REASONS]
AUTO_REASONS = 1000  # every row of batches up to this size gets reasons...
TOP_REASONS = 100  # ...and the most likely rows of larger ones
MAX_CONCURRENT_SCORINGS = int(os.environ.get("SCREENING_MAX_SCORINGS", "2"))
_scoring_slots = threading.BoundedSemaphore(MAX_CONCURRENT_SCORINGS)


@dataclass
class ScoredBatch:
    """One scored upload, compact: accepted rows' input text, typed fields, chances and reasons.

    The raw upload is not kept (only its sha256).
    """

    file_name: str
    file_sha256: str
    variant: str
    version: str
    threshold: float
    inputs: pd.DataFrame  # accepted rows' cells as uploaded (normalised headers), file order
    features: pd.DataFrame  # the same rows validated and typed
    source_lines: np.ndarray
    probabilities: np.ndarray
    report: ValidationReport  # accepted is emptied (features holds it); rejected + warnings stay
    reasons: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    @property
    def n(self) -> int:
        return len(self.probabilities)

    @property
    def asks(self) -> np.ndarray:
        return self.features["ASK_AMT"].to_numpy(dtype=float)

    def labels(self) -> np.ndarray | None:
        """IS_SUCCESSFUL where the upload carries it (never a feature), else None."""
        if TARGET not in self.features:
            return None
        return self.features[TARGET].to_numpy(dtype="float", na_value=np.nan)

    def label_metrics(self) -> dict | None:
        """Accuracy, AUC and confusion at the model's threshold on rows that carry IS_SUCCESSFUL."""
        from core.evaluation import classification_metrics

        labels = self.labels()
        if labels is None or np.isnan(labels).all():
            return None
        known = ~np.isnan(labels)
        return classification_metrics(labels[known].astype(int), self.probabilities[known], self.threshold)

    def rejects_csv(self) -> bytes:
        return to_csv_bytes(rejects_frame(self.report))


def rejects_frame(report: ValidationReport) -> pd.DataFrame:
    """Rejected rows with their ``source_line`` and reason, then the row as uploaded."""
    return report.rejected.rename(columns={"line": SOURCE_LINE})


def _scored_chunk(
    bundle: Bundle, raw: pd.DataFrame, first_line: int
) -> tuple[ValidationReport, pd.DataFrame, np.ndarray, np.ndarray]:
    """Validate and score one chunk: report, accepted rows' input cells, their lines and chances."""
    raw = raw.reset_index(drop=True)
    report = validate(
        raw, known_values=bundle.known_values, ask_range=bundle.ask_range, first_line=first_line
    )
    inputs = raw.loc[report.accepted.index].drop(columns=[MALFORMED], errors="ignore")
    inputs.columns = [normalise_header(c) for c in inputs.columns]
    lines = report.accepted.index.to_numpy(dtype=np.int64) + first_line
    feats = report.accepted.drop(columns=[TARGET], errors="ignore")
    probs = np.round(bundle.predict_proba(feats), 6) if len(feats) else np.empty(0)
    return report, inputs.reset_index(drop=True), lines, probs


def score_upload(
    bundle: Bundle,
    data: bytes | str | Path,
    file_name: str,
    progress: Callable[[int], None] | None = None,
    chunksize: int = 100_000,
) -> ScoredBatch:
    """Validate and score a whole upload (at most ``MAX_CONCURRENT_SCORINGS`` at once per process)."""
    blob = data if isinstance(data, bytes) else Path(data).read_bytes()
    with _scoring_slots:
        reports, inputs, features, lines, probs = [], [], [], [], []
        for line, chunk in iter_chunks(blob, chunksize):
            report, chunk_inputs, chunk_lines, chunk_probs = _scored_chunk(bundle, chunk, line)
            features.append(report.accepted.reset_index(drop=True))
            inputs.append(chunk_inputs)
            lines.append(chunk_lines)
            probs.append(chunk_probs)
            report.accepted = report.accepted.iloc[:0]
            reports.append(report)
            if progress:
                progress(sum(r.n_input for r in reports))
    feats = compact(pd.concat(features, ignore_index=True).drop(columns=[ID_FIELD], errors="ignore"))
    scored = ScoredBatch(
        file_name=file_name,
        file_sha256=hashlib.sha256(blob).hexdigest(),
        variant=bundle.variant,
        version=bundle.version,
        threshold=bundle.threshold,
        inputs=compact(pd.concat(inputs, ignore_index=True)),
        features=feats,
        source_lines=np.concatenate(lines),
        probabilities=np.concatenate(probs),
        report=ValidationReport.concat(reports),
        reasons=np.full(len(feats), "", dtype=object),
    )
    del reports, inputs, features, lines, probs
    release_memory()
    return scored


def release_memory() -> None:
    """Hand memory freed by a large batch back to the system (a long-running server otherwise keeps
    the high-water mark of every upload)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Duplicates:
    """Repeated applicants within one upload (EIN repeated, or whole rows identical)."""

    repeated_ein_rows: int  # rows whose EIN appears more than once
    repeated_ein_lines: list[int]  # the first such lines
    identical_rows: int  # rows identical to an earlier row in every column
    identical_lines: list[int]


def duplicates(batch: ScoredBatch, show: int = 10) -> Duplicates:
    """Which accepted rows repeat an EIN or a whole earlier row."""
    lines = batch.source_lines
    ein = batch.inputs[ID_FIELD].astype("str").str.strip() if ID_FIELD in batch.inputs else None
    if ein is not None:
        repeated = (ein.duplicated(keep=False) & (ein != "")).to_numpy()
    else:
        repeated = np.zeros(batch.n, dtype=bool)
    same = batch.inputs.astype("str").duplicated(keep="first").to_numpy() if batch.n else repeated
    return Duplicates(
        int(repeated.sum()), lines[repeated][:show].tolist(), int(same.sum()), lines[same][:show].tolist()
    )


def seen_before(batch: ScoredBatch, recent_eins: set[str]) -> np.ndarray:
    """Rows whose EIN is among those of recently recorded batches."""
    if ID_FIELD not in batch.inputs or not recent_eins:
        return np.zeros(batch.n, dtype=bool)
    return batch.inputs[ID_FIELD].astype("str").str.strip().isin(recent_eins).to_numpy()


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categories (few distinct values) or Arrow strings: a session holds a batch in
    about the size of its file instead of several times it (Python string objects)."""
    out = {}
    for col in frame.columns:
        values = frame[col]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            distinct = values.nunique(dropna=False)
            values = (
                values.astype("category") if distinct <= max(64, len(values) // 2) else values.astype("str")
            )
        out[col] = values
    return pd.DataFrame(out, index=frame.index)


def reason_positions(probabilities: np.ndarray, source_lines: np.ndarray) -> np.ndarray:
    """Rows that get reasons: all of a batch up to AUTO_REASONS rows, else the TOP_REASONS most likely
    (ties by file order)."""
    n = len(probabilities)
    if n <= AUTO_REASONS:
        return np.arange(n)
    order = np.lexsort((source_lines, -np.asarray(probabilities)))
    return np.sort(order[:TOP_REASONS])


def explain_reasons(
    explainer: object, features: pd.DataFrame, seen_names: set[str] | None = None
) -> list[str]:
    """Reason texts for validated rows (the exact attributions, in words)."""
    from core.explain import reason_codes

    if len(features) == 0:
        return []
    return reason_codes(explainer.explain(features), seen_names=seen_names)


def explain_seconds_per_row(explainer: object, rows: int = 200) -> float:
    """Seconds to explain one applicant with this explainer, timed on the bundled sample applicants."""
    import time

    from core import config

    sample = score_upload(explainer.bundle, config.SAMPLE_APPLICANTS.read_bytes(), "sample").features.iloc[
        :rows
    ]
    started = time.perf_counter()
    explainer.explain(sample)
    return (time.perf_counter() - started) / max(len(sample), 1)


def add_reasons(batch: ScoredBatch, explainer: object, positions: np.ndarray | None = None) -> None:
    """Fill ``batch.reasons`` for the chosen rows (default: ``reason_positions``)."""
    positions = reason_positions(batch.probabilities, batch.source_lines) if positions is None else positions
    todo = np.asarray([i for i in positions if not batch.reasons[i]], dtype=int)
    if len(todo):
        batch.reasons[todo] = explain_reasons(
            explainer, batch.features.iloc[todo], explainer.bundle.seen_names
        )


def decide(batch: ScoredBatch, rule: decisions.Rule) -> decisions.Selection:
    return decisions.apply_rule(rule, batch.probabilities, batch.asks)


def _results(
    inputs: pd.DataFrame,
    lines: np.ndarray,
    probabilities: np.ndarray,
    recommended: np.ndarray,
    reasons: np.ndarray,
    threshold: float,
    version: str,
) -> pd.DataFrame:
    n = len(lines)
    blank = pd.Series([""] * n, dtype=object)
    out = pd.DataFrame(
        {
            SOURCE_LINE: np.asarray(lines, dtype=np.int64),
            ID_FIELD: inputs[ID_FIELD].to_numpy() if ID_FIELD in inputs else blank,
            NAME_FIELD: inputs[NAME_FIELD].to_numpy() if NAME_FIELD in inputs else blank,
            PROBABILITY: np.asarray(probabilities, dtype=float),
            RECOMMENDED: np.asarray(recommended, dtype=int),
            REASONS: np.asarray(reasons, dtype=object),
        }
    )
    rest = [c for c in REQUIRED_FIELDS if c in inputs] + [
        c for c in inputs.columns if c not in REQUIRED_FIELDS and c not in (ID_FIELD, NAME_FIELD)
    ]
    reserved = {c.lower() for c in [*LEAD_COLUMNS, PREDICTED, MODEL_VERSION]}
    for col in rest:
        out[f"input_{col}" if col.lower() in reserved else col] = inputs[col].to_numpy()
    out[PREDICTED] = (np.asarray(probabilities) >= threshold).astype(int)
    out[MODEL_VERSION] = version
    return out


def results_frame(
    batch: ScoredBatch, selection: decisions.Selection, positions: np.ndarray | None = None
) -> pd.DataFrame:
    """The results table in file order (every download), or only the rows at ``positions`` in that
    order (what a screen shows)."""
    if positions is None:
        positions = np.arange(batch.n)
    return _results(
        batch.inputs.iloc[positions], batch.source_lines[positions], batch.probabilities[positions],
        selection.mask[positions], batch.reasons[positions], batch.threshold, batch.version,
    )  # fmt: skip


def display_positions(batch: ScoredBatch, by_chance: bool, limit: int) -> np.ndarray:
    """The rows a screen shows: the first ``limit`` in file order, or the ``limit`` most likely."""
    if by_chance:
        return np.lexsort((batch.source_lines, -batch.probabilities))[:limit]
    return np.arange(min(batch.n, limit))


def results_csv(batch: ScoredBatch, selection: decisions.Selection) -> bytes:
    data = to_csv_bytes(results_frame(batch, selection))
    release_memory()
    return data


def record(
    batch: ScoredBatch,
    selection: decisions.Selection,
    user: str,
    live: bool,
    url: str | None = None,
) -> str:
    """Store the batch (results and rejects bytes as downloaded) in one transaction; returns its id.

    The same file, model version and rule recorded twice is refused, naming the existing batch.
    """
    summary = selection.summary(batch.probabilities, batch.asks)
    return storage.record_batch(
        user=user,
        file_name=batch.file_name,
        file_sha256=batch.file_sha256,
        counts=batch.report.summary(),
        variant=batch.variant,
        version=batch.version,
        live=live,
        rule=selection.rule,
        selected=summary["selected"],
        results_csv=results_csv(batch, selection),
        rejects_csv=batch.rejects_csv(),
        url=url,
    )


# -- the CLI: files of any size in bounded memory ----------------------------------------------
@dataclass
class FileScoreSummary:
    rows: int
    accepted: int
    rejected: int
    with_warnings: int
    variant: str
    version: str
    recommended: int


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def score_file(
    bundle: Bundle,
    source: str | Path,
    output: str | Path,
    rejects: str | Path | None = None,
    threshold: float | None = None,
    explainer: object | None = None,
    chunksize: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> tuple[FileScoreSummary, Path | None]:
    """Score a CSV of any size chunk by chunk into ``output`` (same columns as the dashboard's
    download; threshold rule). Outputs are written to temporary files and renamed, so a failure
    never leaves a truncated file. Returns the summary and the rejects file written (if any)."""
    output, threshold = Path(output), bundle.threshold if threshold is None else float(threshold)
    decisions.Rule("threshold", threshold=threshold)  # validates it
    tmp_out = _atomic_target(output)
    rej_path = Path(rejects) if rejects else None
    tmp_rej = _atomic_target(rej_path) if rej_path else None
    kept = pd.DataFrame()  # features of the rows that may get reasons (bounded: see _keep)
    total = accepted = rejected = warned = recommended = position = 0
    try:
        with open(tmp_out, "w", newline="", encoding="utf-8") as out_fh, (
            open(tmp_rej, "w", newline="", encoding="utf-8") if tmp_rej else contextlib.nullcontext()
        ) as rej_fh:  # fmt: skip
            first = True
            for line, chunk in iter_chunks(source, chunksize):
                report, inputs, lines, probs = _scored_chunk(bundle, chunk, line)
                blank = np.full(len(probs), "", object)
                frame = _results(
                    inputs, lines, probs, probs >= threshold, blank, bundle.threshold, bundle.version
                )
                neutralise(frame).to_csv(out_fh, index=False, header=first)
                if rej_fh is not None:
                    neutralise(rejects_frame(report)).to_csv(rej_fh, index=False, header=first)
                first = False
                feats = report.accepted.reset_index(drop=True).assign(
                    _p=probs, _line=lines, _pos=np.arange(position, position + len(probs))
                )
                kept = _keep(pd.concat([kept, feats], ignore_index=True))
                position += len(probs)
                total += report.n_input
                accepted += report.n_accepted
                rejected += report.n_rejected
                warned += report.n_warned
                recommended += int((probs >= threshold).sum())
                if progress:
                    progress(total)
        if explainer is not None and position:
            _fill_reasons(tmp_out, explainer, kept, position)
        if tmp_rej is not None:
            os.replace(tmp_rej, rej_path)
        os.replace(tmp_out, output)
    finally:
        for tmp in (tmp_out, tmp_rej):
            if tmp is not None and tmp.exists():
                tmp.unlink()
    summary = FileScoreSummary(total, accepted, rejected, warned, bundle.variant, bundle.version, recommended)
    return summary, rej_path


def _keep(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that can still be among those ``reason_positions`` picks: all while the file is small,
    then the TOP_REASONS most likely so far (ties by file order)."""
    if len(rows) <= AUTO_REASONS:
        return rows
    return rows.sort_values(["_p", "_line"], ascending=[False, True], kind="stable").head(TOP_REASONS)


def _fill_reasons(path: Path, explainer: object, kept: pd.DataFrame, n: int) -> None:
    """Second pass over the first pass's file: the reasons of the rows ``reason_positions`` picks."""
    if n > AUTO_REASONS:
        kept = kept.sort_values(["_p", "_line"], ascending=[False, True], kind="stable").head(TOP_REASONS)
    chosen = kept.sort_values("_pos")
    features = chosen.drop(columns=["_p", "_line", "_pos"])
    texts = dict(zip(chosen["_pos"], explain_reasons(explainer, features, explainer.bundle.seen_names)))
    tmp = _atomic_target(path)
    with open(path, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        col = header.index(REASONS)
        for i, row in enumerate(reader):
            text = texts.get(i)
            if text is not None:
                row[col] = text
            writer.writerow(row)
    os.replace(tmp, path)


def check_recordable(user: str | None) -> str:
    if not user or not user.strip():
        raise BadRequest("Recording needs a user name (--user NAME).")
    return user.strip()
