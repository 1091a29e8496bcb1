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
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import decisions, monitoring, storage
from core.errors import BadRequest
from core.features import frame_names
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
    check: monitoring.Check | None = None  # data checks against the model's reference (None: no reference)
    first_time: np.ndarray | None = None  # organisation absent from the model's training data, per row
    calibration: monitoring.EstimateCalibration | None = None  # the scoring version's, for estimates
    learned: int | None = None  # rows the version's served network learned from (None: cannot tell)
    explain_seconds: float = 0.0  # time spent explaining this batch's rows so far...
    explained: int = 0  # ...and how many rows that was (the estimate before explaining the rest)

    def seconds_per_reason(self) -> float | None:
        """Measured seconds to explain one of this batch's rows (None before any was explained)."""
        return self.explain_seconds / self.explained if self.explained else None

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
        labels = self.labels()
        if labels is None or np.isnan(labels).all():
            return None
        from core.evaluation import classification_metrics  # scikit-learn: only for labelled batches

        known = ~np.isnan(labels)
        return classification_metrics(labels[known].astype(int), self.probabilities[known], self.threshold)

    def counts(self) -> dict:
        """The file's counts: every row of the file is accepted (a row of the results) or rejected."""
        rows, rejected = self.report.n_input, self.report.n_rejected
        counts = {
            "rows": rows,
            "accepted": self.n,
            "rejected": rejected,
            "with_warnings": self.report.n_warned,
        }
        if rows != self.n + rejected:
            raise ValueError(f"{rows} rows in the file but {self.n} scored and {rejected} rejected")
        return counts

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


@dataclass(frozen=True)
class HeldFile:
    """An uploaded file as a session keeps it once scored: compressed (a CSV packs to about a fifth of
    its size) so the same file can be scored again with another model version after the server's own
    copy of the upload has been let go."""

    name: str
    sha256: str
    size: int  # bytes before compression
    packed: bytes

    @classmethod
    def of(cls, name: str, data: bytes, sha256: str | None = None) -> HeldFile:
        """``sha256``: the data's hash when the caller has it already (a scored batch carries it)."""
        import zlib

        return cls(name, sha256 or hashlib.sha256(data).hexdigest(), len(data), zlib.compress(data, 1))

    def data(self) -> bytes:
        import zlib

        return zlib.decompress(self.packed)


def score_upload(
    bundle: Bundle,
    data: bytes | str | Path,
    file_name: str,
    progress: Callable[[int], None] | None = None,
    chunksize: int = 100_000,
) -> ScoredBatch:
    """Validate and score a whole upload (at most ``MAX_CONCURRENT_SCORINGS`` at once per process)."""
    blob = data if isinstance(data, bytes) else Path(data).read_bytes()
    profile = monitoring.new_profile(bundle)
    with _scoring_slots:
        reports, inputs, features, lines, probs, first = [], [], [], [], [], []
        learned: int | None = 0
        for line, chunk in iter_chunks(blob, chunksize):
            report, chunk_inputs, chunk_lines, chunk_probs = _scored_chunk(bundle, chunk, line)
            first.append(_profile_chunk(bundle, profile, report, chunk_probs))
            learned = _add_learned(learned, bundle, report)
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
        check=monitoring.check_bundle_profile(bundle, profile) if profile is not None else None,
        first_time=np.concatenate(first),
        calibration=profile.reference.calibration() if profile is not None else None,
        learned=learned,
    )
    del reports, inputs, features, lines, probs
    release_memory()
    return scored


def _add_learned(count: int | None, bundle: Bundle, report: ValidationReport) -> int | None:
    """``count`` plus the chunk's rows the served network learned from (None once it cannot tell)."""
    if count is None:
        return None
    mask = bundle.learned_from(report.accepted) if len(report.accepted) else np.zeros(0, bool)
    return None if mask is None else count + int(mask.sum())


def learned_notice(learned: int | None, version: str) -> str | None:
    """The warning shown when a batch holds rows its model learned from (None when it holds none)."""
    if not learned:
        return None
    return (
        f"{learned:,} of these rows are rows model version {version} learned from in training (every "
        "application field the same as a training row). Its chances for them are not forecasts: it has "
        "seen their outcomes. The accuracy estimate and any comparison with outcomes flatter it on them."
    )


def _profile_chunk(
    bundle: Bundle, profile: monitoring.Profile | None, report: ValidationReport, probs: np.ndarray
) -> np.ndarray:
    """Add one validated chunk to a batch's monitoring counts; returns which rows are first-time
    organisations (the groups need it too)."""
    first_time = ~bundle.is_seen(report.accepted) if len(report.accepted) else np.zeros(0, bool)
    if profile is not None:
        profile.add(report.accepted, probs, first_time, rejected=report.n_rejected)
    return first_time


def group_values(batch: ScoredBatch, bundle: Bundle) -> pd.DataFrame:
    """The batch's rows as groups and cohorts name them (fields as text, ASK_AMT bins, first_time)."""
    from core.groups import slice_values

    first_time = batch.first_time
    if first_time is None or len(first_time) != batch.n:
        first_time = ~bundle.is_seen(batch.features) if batch.n else np.zeros(0, bool)
    return slice_values(batch.features, first_time)


def groups_of(
    batch: ScoredBatch,
    bundle: Bundle,
    recommended: np.ndarray,
    by: list[str] | None = None,
    min_size: int | None = None,
    with_weak_spots: bool = False,
    slice_min: int | None = None,
    values: pd.DataFrame | None = None,
):
    """Group rates of a decision on this batch (and weak spots when it carries IS_SUCCESSFUL)."""
    from core import groups

    values = group_values(batch, bundle) if values is None else values
    return groups.analyse(
        values, recommended, batch.probabilities, batch.labels(), by,
        groups.MIN_GROUP if min_size is None else min_size, with_weak_spots,
        groups.MIN_SLICE if slice_min is None else slice_min,
    )  # fmt: skip


def estimate(batch: ScoredBatch, selection: decisions.Selection) -> monitoring.Estimate:
    """Expected accuracy and successes of the decision (CBPE from the calibrated chances)."""
    return estimate_of(batch, selection.mask)


def estimate_of(batch: ScoredBatch, recommended: np.ndarray) -> monitoring.Estimate:
    """The estimate of any decision on a scored batch."""
    return monitoring.estimate(
        batch.probabilities, recommended, batch.first_time, batch.calibration, frame_names(batch.features)
    )


def monitoring_record(check: monitoring.Check | None, est: monitoring.Estimate) -> dict:
    """What a recorded batch keeps of its monitoring: the data checks and the estimate at scoring time."""
    return {"check": check.to_dict() if check is not None else None, "estimate": est.to_dict()}


def release_memory(collect: bool = True) -> None:
    """Hand memory freed by a large batch back to the system (a long-running server otherwise keeps
    the high-water mark of every upload). ``collect=False``: only the trim (a few ms), for the end of
    every page run."""
    import ctypes
    import gc

    if collect:
        gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def freeze_long_lived() -> None:
    """Leave everything alive now (imported code, loaded models) out of later garbage collections.

    A full collection walks every tracked object: after the serving imports about 190,000, which
    took 0.3-0.7 s each time on the interpreter lock the page runs need (the janitor runs one every
    few seconds, and every upload ends with one). Frozen objects are still freed by reference
    counting; only cycles among them are never collected, so call this when little but code and
    models is alive (serve.py at start, the page warm-up after the server's first page run, which
    holds no upload). Objects made later (page runs, batches) are collected as before.
    """
    import gc

    gc.collect()
    gc.freeze()


def start_memory_janitor(interval: float = 5.0, stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that collects garbage and trims the heap every ``interval`` seconds. A page
    run's namespace is a reference cycle (the functions it defines hold it), so when a session ends
    its last run, with the batch and tables in it, waits for Python's next full collection, which
    an idle server may not reach for hours (bench/memory.py)."""

    stop = stop or threading.Event()

    def work() -> None:
        while not stop.wait(interval):
            release_memory()

    thread = threading.Thread(target=work, name="memory-janitor", daemon=True)
    thread.start()
    return thread


@dataclass
class Duplicates:
    """Repeated applicants within one upload (EIN repeated, or whole rows identical)."""

    repeated_ein_rows: int  # rows whose EIN appears more than once
    repeated_ein_lines: list[int]  # the first such lines
    identical_rows: int  # rows identical to an earlier row in EIN, NAME and the nine fields
    identical_lines: list[int]


def duplicates(batch: ScoredBatch, show: int = 10) -> Duplicates:
    """Which accepted rows repeat an EIN or an earlier row (the review queue's rule too)."""
    from core.record import duplicate_rows

    lines = batch.source_lines
    repeated, same = duplicate_rows(batch.inputs)
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


def add_reasons(batch: ScoredBatch, explainer: object, positions: np.ndarray | None = None) -> None:
    """Fill ``batch.reasons`` for the chosen rows (default: ``reason_positions``)."""
    positions = reason_positions(batch.probabilities, batch.source_lines) if positions is None else positions
    todo = np.asarray([i for i in positions if not batch.reasons[i]], dtype=int)
    if len(todo):
        started = time.perf_counter()
        batch.reasons[todo] = explain_reasons(
            explainer, batch.features.iloc[todo], explainer.bundle.seen_names
        )
        batch.explain_seconds += time.perf_counter() - started
        batch.explained += len(todo)


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
        counts=batch.counts(),
        variant=batch.variant,
        version=batch.version,
        live=live,
        rule=selection.rule,
        selected=summary["selected"],
        results_csv=results_csv(batch, selection),
        rejects_csv=batch.rejects_csv(),
        monitoring=monitoring_record(batch.check, estimate(batch, selection)),
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
    check: monitoring.Check | None = None
    estimate: monitoring.Estimate | None = None
    learned: int | None = None  # rows the version's served network learned from (None: cannot tell)


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
    learned: int | None = 0
    profile = monitoring.new_profile(bundle)
    sums = monitoring.EstimateSums(profile.reference.calibration() if profile is not None else None)
    try:
        with open(tmp_out, "w", newline="", encoding="utf-8") as out_fh, (
            open(tmp_rej, "w", newline="", encoding="utf-8") if tmp_rej else contextlib.nullcontext()
        ) as rej_fh:  # fmt: skip
            first = True
            for line, chunk in iter_chunks(source, chunksize):
                report, inputs, lines, probs = _scored_chunk(bundle, chunk, line)
                first_time = _profile_chunk(bundle, profile, report, probs)
                learned = _add_learned(learned, bundle, report)
                sums.add(probs, probs >= threshold, first_time, frame_names(report.accepted))
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
    check = monitoring.check_bundle_profile(bundle, profile) if profile is not None else None
    summary = FileScoreSummary(
        total, accepted, rejected, warned, bundle.variant, bundle.version, recommended, check, sums.result(),
        learned,
    )  # fmt: skip
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


# -- outcomes that arrived later ----------------------------------------------------------------
@dataclass
class OutcomesResult:
    """Outcomes attached to a recorded batch, measured against the recorded recommendation."""

    batch_id: str
    joined_on: str  # "EIN" or "source_line"
    realized: monitoring.Realized
    estimate: monitoring.Estimate  # made at scoring time (recomputed for batches recorded before it)
    outcome_rows: int  # rows in the outcomes file
    bad_rows: int  # rows whose IS_SUCCESSFUL is not 0 or 1

    def to_dict(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "joined_on": self.joined_on,
            "n_matched": self.realized.n_matched,
            "n_unmatched": self.realized.n_unmatched,
            "outcome_rows": self.outcome_rows,
            "bad_rows": self.bad_rows,
            "accuracy": self.realized.accuracy,
            "estimated_accuracy": self.estimate.accuracy,
            "estimated_accuracy_low": self.estimate.accuracy_low,
            "estimated_accuracy_high": self.estimate.accuracy_high,
            "precision_recommended": self.realized.precision_recommended,
            "estimated_precision": self.estimate.expected_precision,
            "roc_auc": self.realized.roc_auc,
            "calibration_gap": self.realized.calibration_gap,
            "expected_calibration_error": self.realized.expected_calibration_error,
            "calibration": self.realized.calibration,
        }


def _outcome_table(data: bytes) -> pd.DataFrame:
    from core.reading import read_table

    frame = read_table(data)
    frame.columns = [
        SOURCE_LINE if normalise_header(c) == SOURCE_LINE.upper() else normalise_header(c)
        for c in frame.columns
    ]
    if TARGET not in frame:
        raise BadRequest(f"The outcomes file needs an {TARGET} column (0 or 1), with EIN or source_line.")
    return frame


def stored_estimate(record: storage.BatchRecord, probabilities: np.ndarray, recommended: np.ndarray):
    """The estimate made when the batch was recorded (recomputed from its stored chances if older)."""
    stored = record.monitoring_data().get("estimate")
    if stored:
        return monitoring.Estimate.from_dict(stored)
    return monitoring.estimate(probabilities, recommended)


def attach_outcomes(
    batch_id: str, data: bytes, file_name: str, user: str, url: str | None = None, replace: bool = False
) -> OutcomesResult:
    """Join an outcomes file to a recorded batch (on EIN when both sides have unique EINs, else on
    source_line), measure the recorded recommendation (the rule, before overrides) against it, store it.
    A batch that has outcomes is refused unless ``replace`` (the earlier set is kept, marked replaced)."""
    from core.record import load_batch

    recorded = load_batch(batch_id, url)
    record_, results = recorded.record, recorded.rows
    if not replace:
        storage.refuse_if_outcomes(batch_id, url)  # before the work; the write checks again
    frame = _outcome_table(data)
    label = frame[TARGET].astype(str).str.strip()
    good = label.isin(["0", "1", "0.0", "1.0"])
    bad_rows = int((~good).sum())
    frame = frame.loc[good].assign(**{TARGET: label[good].astype(float).astype(int)})
    eins = results[ID_FIELD].str.strip() if ID_FIELD in results else None
    joined_on = None
    if ID_FIELD in frame and eins is not None and (eins != "").all() and eins.is_unique:
        theirs = frame[ID_FIELD].astype(str).str.strip()
        if theirs.is_unique:
            joined_on = ID_FIELD
            lookup = dict(zip(theirs, frame[TARGET]))
            outcome = eins.map(lookup)
    if joined_on is None:
        if SOURCE_LINE not in frame:
            raise BadRequest(
                "The outcomes file needs EIN (unique in the batch and the file) or source_line to match rows."
            )
        lines = pd.to_numeric(frame[SOURCE_LINE], errors="coerce")
        ok = lines.notna() & ~lines.duplicated(keep=False)
        joined_on = SOURCE_LINE
        lookup = dict(zip(lines[ok].astype(int), frame.loc[ok, TARGET]))
        outcome = results[SOURCE_LINE].astype(int).map(lookup)
    matched = outcome.notna().to_numpy()
    if not matched.any():
        raise BadRequest(f"No row of the outcomes file matches a row of batch {batch_id} (by {joined_on}).")
    probs = recorded.probabilities[matched]
    rec = recorded.recommended[matched]
    y = outcome.to_numpy()[matched].astype(int)
    real = monitoring.realized(probs, rec, y, n_unmatched=int(len(frame) - matched.sum()))
    est = stored_estimate(record_, recorded.probabilities, recorded.recommended)
    result = OutcomesResult(batch_id, joined_on, real, est, len(frame) + bad_rows, bad_rows)
    kept = pd.DataFrame({SOURCE_LINE: recorded.source_lines[matched], TARGET: y})
    storage.add_outcomes(
        batch_id,
        user=user,
        file_name=file_name,
        joined_on=joined_on,
        summary=result.to_dict(),
        outcomes_csv=kept.to_csv(index=False).encode(),
        replace=replace,
        url=url,
    )
    return result


def monitoring_history(
    records: list[storage.BatchRecord] | None = None, url: str | None = None
) -> pd.DataFrame:
    """One row per recorded batch, oldest first: data-check status, estimated and (when outcomes
    arrived) realized accuracy; History's trend table and chart (``records``: already listed ones)."""
    records = storage.list_batches(url) if records is None else records
    arrived = storage.latest_outcomes(url)
    rows = []
    for r in reversed(records):
        data = {} if r.monitoring_damaged else r.monitoring_data()
        check, est = data.get("check") or {}, data.get("estimate") or {}
        real = arrived.get(r.id)
        rows.append(
            {
                "batch": r.id,
                "recorded": r.created_at,
                "model_version": r.version,
                "live": bool(r.live) if r.live is not None else None,
                "rows": r.accepted,
                "data_checks": "damaged record" if r.monitoring_damaged
                else monitoring.STATUS_WORDS.get(check.get("status", ""), "not checked"),
                "failed_checks": ", ".join(
                    k for k, v in {**check.get("fields", {}), **check.get("extra", {})}.items()
                    if v.get("status") == monitoring.FAIL
                ),
                "estimated_accuracy": est.get("accuracy"),
                "estimated_low": est.get("accuracy_low"),
                "estimated_high": est.get("accuracy_high"),
                "realized_accuracy": real.summary.get("accuracy") if real else None,
                "outcomes_matched": real.summary.get("n_matched") if real else None,
            }
        )  # fmt: skip
    frame = pd.DataFrame(
        rows,
        columns=["batch", "recorded", "model_version", "live", "rows", "data_checks", "failed_checks",
                 "estimated_accuracy", "estimated_low", "estimated_high", "realized_accuracy",
                 "outcomes_matched"],
    )  # fmt: skip
    for col in [
        "estimated_accuracy",
        "estimated_low",
        "estimated_high",
        "realized_accuracy",
        "outcomes_matched",
    ]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def recorded_groups(
    batch_id: str, bundle: Bundle | None, min_size: int | None = None, url: str | None = None
):
    """Group rates of a recorded batch's decision after overrides (``final_decision``), with the
    outcomes when they arrived (then also weak spots). ``bundle``: the version that scored it, for
    first-time organisations (None when that version is gone: no first_time groups)."""
    from core import groups
    from core.record import load_batch

    recorded = load_batch(batch_id, url)
    features = recorded.features.reindex(range(recorded.n))
    first_time = ~bundle.is_seen(features.fillna("")) if bundle is not None else None
    values = groups.slice_values(features.assign(ASK_AMT=recorded.asks), first_time)
    labels = recorded.outcome_labels(url)
    return groups.analyse(
        values, recorded.final, recorded.probabilities, labels, None,
        groups.MIN_GROUP if min_size is None else min_size, labels is not None,
    )  # fmt: skip


# -- decision support: decline reasons and what it would take --------------------------------------
def decision_line(batch: ScoredBatch, selection: decisions.Selection) -> float:
    """The chance an applicant must reach under the rule: the threshold, or (budget) the lowest chance
    the budget funded."""
    if selection.mode == "threshold":
        return float(selection.threshold)
    funded = batch.probabilities[selection.mask]
    return float(funded.min()) if len(funded) else float(batch.probabilities.max(initial=1.0))


def applicant_support(
    batch: ScoredBatch,
    selection: decisions.Selection,
    explainer: object,
    positions: np.ndarray,
    fields: list[str] | None = None,
    max_changes: int = 2,
) -> tuple[list[list[str]], list]:
    """For rows at ``positions``: their decline reasons (only fields that lowered the chance; empty for
    recommended rows) and the smallest verified change that reaches the decision line (None for
    recommended rows)."""
    from core.explain import name_records
    from core.whatif import Searcher, decline_reasons

    positions = np.asarray(positions, dtype=int)
    declined = ~selection.mask[positions]
    reasons: list[list[str]] = [[] for _ in positions]
    suggestions: list = [None for _ in positions]
    todo = positions[declined]
    if len(todo):
        rows = batch.features.iloc[todo].drop(columns=[TARGET], errors="ignore")
        attr = explainer.explain(rows)
        found = decline_reasons(attr, explainer.bundle.seen_names, name_records(explainer.bundle))
        cfs = Searcher(explainer.bundle, fields, max_changes).search(rows, decision_line(batch, selection))
        for k, j in enumerate(np.flatnonzero(declined)):
            reasons[j] = found[k]
            suggestions[j] = cfs[k]
    return reasons, suggestions


def decline_letters_csv(
    batch: ScoredBatch, selection: decisions.Selection, explainer: object, fields: list[str] | None = None
) -> bytes:
    """One row per applicant: source_line, EIN, NAME, decision, reasons and suggestion (declined only)."""
    from core.whatif import decline_letter_frame

    positions = np.arange(batch.n)
    reasons, suggestions = applicant_support(batch, selection, explainer, positions, fields)
    results = results_frame(batch, selection)
    return to_csv_bytes(decline_letter_frame(results, reasons, suggestions))
