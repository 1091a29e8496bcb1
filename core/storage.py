"""The record of scored batches and staff overrides (SQLAlchemy; SQLite WAL by default).

Every batch keeps the exact bytes of its results as first produced, so History can hand them
out again after a restart. Writes happen in one transaction: a crash mid-save leaves the whole
batch or nothing. A deployment can point ``SCREENING_DB_URL`` at PostgreSQL
(``postgresql+psycopg://...``; the driver is in requirements-postgres.txt).

Nothing recorded silently disappears: a SQLite file that exists but is empty or damaged, or a
missing file while backups exist, is reported (:class:`StorageError`) and kept as it is, never
recreated empty; ``python -m core restore`` brings back the latest backup and keeps the damaged
file beside it. Backups are SQLite online backups, taken at most once per interval after a
write, rotated, 0600 like the database. Stored text loses NUL and control characters. Errors
are logged without bound values (no applicant data in logs).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core import config
from core.errors import BadRequest, StorageError

log = logging.getLogger("screening.storage")


class AlreadyRecorded(BadRequest):
    """The same file, model version and rule is already a recorded batch (``batch_id``)."""

    def __init__(self, message: str, batch_id: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id


metadata = MetaData()
BACKUP_KEEP = int(os.environ.get("SCREENING_BACKUP_KEEP", "10"))
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000

batches = Table(
    "batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user", String(120), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("warned", Integer, nullable=False),
    Column("variant", String(64), nullable=False),
    Column("version", String(120), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("threshold", Float),
    Column("budget", Float),
    Column("selected", Integer, nullable=False),
    Column("results_csv", LargeBinary, nullable=False),
    Column("rejects_csv", LargeBinary, nullable=False),
    Column("rank_by", String(32)),
    Column("rule_key", String(120)),
    Column("live", Integer),
    Column("monitoring", Text),  # JSON: data checks and the accuracy estimate at scoring time
    # set by the migration on copies recorded twice before the database enforced "once" (kept, marked)
    Column("legacy_duplicate", Integer),
)
# "once": one batch per file, model version and rule, enforced by the database for every writer
Index(
    "uq_batches_once",
    batches.c.file_sha256,
    batches.c.version,
    batches.c.rule_key,
    unique=True,
    sqlite_where=batches.c.legacy_duplicate.is_(None),
    postgresql_where=batches.c.legacy_duplicate.is_(None),
)

overrides = Table(
    "overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), ForeignKey("batches.id"), nullable=False, index=True),
    # the row's source_line (batches recorded before source_line existed: its rank in the results)
    Column("row", Integer, nullable=False),
    Column("decision", Integer, nullable=False),  # 1 approve, 0 decline, -1 override undone
    Column("reason", Text, nullable=False),
    Column("user", String(120), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), ForeignKey("batches.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("user", String(120), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("joined_on", String(16), nullable=False),
    Column("summary", Text, nullable=False),  # JSON: the realized figures (core.monitoring.Realized)
    Column("outcomes_csv", LargeBinary, nullable=False),  # source_line, IS_SUCCESSFUL of matched rows
    Column("replaced_at", DateTime(timezone=True)),  # set when a later set replaced this one (kept)
    Column("replaced_by", String(120)),
)
# one current outcomes set per batch (replaced sets are kept beside it)
Index(
    "uq_outcomes_current",
    outcomes.c.batch_id,
    unique=True,
    sqlite_where=outcomes.c.replaced_at.is_(None),
    postgresql_where=outcomes.c.replaced_at.is_(None),
)
review_items = Table(
    "review_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), ForeignKey("batches.id"), nullable=False, index=True),
    Column("source_line", Integer, nullable=False),
    Column("why", Text, nullable=False),  # the queue rules that picked the row, "; "-joined
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("assigned_to", String(120)),
    Column("status", String(16), nullable=False),  # open / resolved
    Column("decision", String(16)),  # approve / decline / keep
    Column("reason", Text),
    Column("resolved_by", String(120)),
    Column("resolved_at", DateTime(timezone=True)),
)
OVERRIDE_WORDS = {1: "approve", 0: "decline", -1: "none"}
REVIEW_DECISIONS = {"approve": 1, "decline": 0, "keep": -1}  # the override each resolution records


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(value: object) -> str:
    """JSON for stored summaries: NaN and infinities become null (PostgreSQL and browsers refuse them)."""
    return json.dumps(_finite(value), allow_nan=False, default=float)


_engine_lock = threading.Lock()
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str, limit: int) -> str:
    """Stored text: no NUL or control characters (newlines and tabs kept), at most ``limit`` chars."""
    return _CONTROL.sub("", str(value))[:limit]


# -- engines -------------------------------------------------------------------------------------
def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def backups_dir(url: str | None = None) -> Path:
    path = _sqlite_path(url or config.database_url())
    return (path.parent if path else config.home()) / "backups"


def _backups(url: str) -> list[Path]:
    folder = backups_dir(url)
    return sorted(folder.glob("screening-*.db")) if folder.is_dir() else []


def get_engine(url: str | None = None) -> Engine:
    """One engine per database URL, after an integrity check; raises StorageError when the record
    is damaged or unreachable (and leaves it as it is)."""
    url = url or config.database_url()
    with _engine_lock:  # concurrent first calls must not both create the tables
        try:
            return _engine(url)
        except StorageError:
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as err:
            log.error("batch record unreachable: %s", type(err).__name__)
            raise StorageError(
                f"The batch record cannot be reached ({type(err).__name__}). Nothing was changed; "
                "try again, or ask an administrator to check the database."
            ) from None


def reset_engines() -> None:
    """Forget cached engines (a test simulating a restart, a restore, or a changed URL)."""
    with _engine_lock:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _engine.cache_clear()


_ENGINES: dict[str, Engine] = {}


def _check_sqlite_file(path: Path, url: str) -> None:
    if path.exists() and path.stat().st_size == 0:
        raise StorageError(
            f"The batch record {path} is empty (0 bytes): every recorded batch would be gone. It was kept "
            "as it is and nothing new was written. Restore the latest backup with: python -m core restore"
        )
    if not path.exists() and _backups(url):
        raise StorageError(
            f"The batch record {path} is missing but backups exist. Nothing was created in its place. "
            "Restore the latest backup with: python -m core restore"
        )
    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
                result = conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as err:
            raise StorageError(
                f"The batch record {path} is damaged ({err}). It was kept as it is. "
                "Restore the latest backup with: python -m core restore"
            ) from None
        if not result or result[0] != "ok":
            raise StorageError(
                f"The batch record {path} failed its integrity check. It was kept as it is. "
                "Restore the latest backup with: python -m core restore"
            )


def _private(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):
            os.chmod(p, 0o600)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    path = _sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # pragma: no cover - exercised via connections
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    else:
        connect_args = {}
        if url.startswith("postgresql"):
            connect_args = {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            }
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
    metadata.create_all(engine)
    _upgrade(engine)
    if path is not None:
        _private(path)
    _ENGINES[url] = engine
    return engine


def _upgrade(engine: Engine) -> None:
    """Migrate a record made by an earlier version: add the columns newer versions of each table
    have (older rows keep NULL), then the database's "once" rules. Copies of a batch recorded twice
    before the database enforced "once" are kept and marked ``legacy_duplicate`` (all but the
    earliest), so the rule holds for every later write without deleting anything."""
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in (batches, outcomes):
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for col in table.c:
                if col.name not in have:
                    kind = col.type.compile(engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}'))
        indexes = {i["name"] for t in ("batches", "outcomes") for i in inspector.get_indexes(t)}
        if "uq_batches_once" not in indexes:
            seen: set[tuple] = set()
            rows = conn.execute(
                select(batches.c.id, batches.c.file_sha256, batches.c.version, batches.c.rule_key)
                .where(batches.c.rule_key.is_not(None), batches.c.legacy_duplicate.is_(None))
                .order_by(batches.c.created_at, batches.c.id)
            ).all()
            for batch_id, *key in rows:
                if tuple(key) in seen:
                    conn.execute(batches.update().where(batches.c.id == batch_id).values(legacy_duplicate=1))
                seen.add(tuple(key))
            next(i for i in batches.indexes if i.name == "uq_batches_once").create(conn)
        if "uq_outcomes_current" not in indexes:
            rows = conn.execute(
                select(outcomes.c.id, outcomes.c.batch_id, outcomes.c.created_at)
                .where(outcomes.c.replaced_at.is_(None))
                .order_by(outcomes.c.id.desc())
            ).all()
            current: set[str] = set()
            for (
                out_id,
                batch_id,
                created,
            ) in rows:  # the latest set stays current; earlier ones were superseded
                if batch_id in current:
                    conn.execute(
                        outcomes.update()
                        .where(outcomes.c.id == out_id)
                        .values(replaced_at=created, replaced_by="(superseded before replacing was explicit)")
                    )
                current.add(batch_id)
            next(i for i in outcomes.indexes if i.name == "uq_outcomes_current").create(conn)


def _guard(fn: Callable) -> Callable:
    """Database failures become one StorageError, logged without bound values."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StorageError, BadRequest):
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as err:
            log.error("batch record error in %s: %s", fn.__name__, type(err).__name__)
            raise StorageError(
                f"The batch record could not be read or written ({type(err).__name__}). Nothing was lost; "
                "try again, or ask an administrator to check the database."
            ) from None

    return wrapper


# -- batches ------------------------------------------------------------------------------------
@dataclass
class BatchRecord:
    """What History lists about a batch (without the stored bytes)."""

    id: str
    created_at: datetime
    user: str
    file_name: str
    rows: int
    accepted: int
    rejected: int
    warned: int
    variant: str
    version: str
    mode: str
    threshold: float | None
    budget: float | None
    selected: int
    file_sha256: str
    rank_by: str | None = None
    rule_key: str | None = None
    live: int | None = None
    monitoring: str | None = None  # JSON: {"check": ..., "estimate": ...} at scoring time
    legacy_duplicate: int | None = None  # 1: a second copy recorded before "once" was enforced

    @property
    def monitoring_damaged(self) -> bool:
        """The stored monitoring JSON is there but unreadable (reported, never read as 'none')."""
        if not self.monitoring:
            return False
        try:
            return not isinstance(json.loads(self.monitoring), dict)
        except ValueError:
            return True

    def monitoring_data(self) -> dict:
        """The stored data checks and estimate ({} for batches recorded before monitoring existed).
        Raises StorageError when the stored record is damaged."""
        if not self.monitoring:
            return {}
        if self.monitoring_damaged:
            log.error("damaged monitoring record in batch %s", self.id)
            raise StorageError(
                f"The data checks and estimate stored with batch {self.id} are damaged (not valid JSON). "
                "The batch and its stored bytes were kept as they are."
            )
        return json.loads(self.monitoring)

    def counts(self) -> dict:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "warned": self.warned,
        }

    def rule_text(self) -> str:
        if self.mode == "threshold":
            return f"threshold {self.threshold:.2f}"
        return f"budget ${self.budget:,.0f}"


@_guard
def find_batch(file_sha256: str, version: str, rule_key: str, url: str | None = None) -> str | None:
    """The id of a batch recorded from the same file with the same version and rule, if any."""
    with get_engine(url).connect() as conn:
        return conn.execute(
            select(batches.c.id).where(
                batches.c.file_sha256 == file_sha256,
                batches.c.version == version,
                batches.c.rule_key == rule_key,
            )
        ).scalar()


_record_lock = threading.Lock()


@_guard
def record_batch(
    *,
    user: str,
    file_name: str,
    file_sha256: str,
    counts: dict,
    variant: str,
    version: str,
    live: bool,
    rule: object,
    selected: int,
    results_csv: bytes,
    rejects_csv: bytes,
    monitoring: dict | None = None,
    url: str | None = None,
) -> str:
    """Store a scored batch in one transaction; returns its id. Refuses the same file, version and
    rule twice (``BadRequest`` naming the batch that already holds it)."""
    batch_id = str(uuid.uuid4())
    row = {
        "id": batch_id,
        "created_at": datetime.now(UTC),
        "user": clean_text(user, 120),
        "file_name": clean_text(file_name or "upload.csv", 255) or "upload.csv",
        "file_sha256": file_sha256,
        "rows": int(counts["rows"]),
        "accepted": int(counts["accepted"]),
        "rejected": int(counts["rejected"]),
        "warned": int(counts["with_warnings"]),
        "variant": variant,
        "version": version,
        "mode": rule.mode,
        "threshold": rule.threshold,
        "budget": rule.budget,
        "rank_by": rule.rank_by if rule.mode == "budget" else None,
        "rule_key": rule.key(),
        "live": int(bool(live)),
        "selected": int(selected),
        "results_csv": results_csv,
        "rejects_csv": rejects_csv,
        "monitoring": to_json(monitoring) if monitoring else None,
    }
    rows, accepted, rejected = row["rows"], row["accepted"], row["rejected"]
    if rows != accepted + rejected or min(rows, accepted, rejected) < 0:
        raise ValueError(f"batch counts do not add up: {rows} rows, {accepted} accepted, {rejected} rejected")
    key = rule.key()
    engine = get_engine(url)
    with _record_lock:
        with engine.connect() as conn:  # the usual case, with no write started
            _refuse_if_recorded(conn, file_sha256, version, key)
        try:  # the write alone in its transaction (SQLite: no read snapshot to go stale while waiting)
            with engine.begin() as conn:
                conn.execute(batches.insert().values(**row))
        except IntegrityError:  # another process or server stored it first: the database said "once"
            with engine.connect() as conn:
                _refuse_if_recorded(conn, file_sha256, version, key)
            raise
    maybe_backup(url)
    return batch_id


def _refuse_if_recorded(conn, file_sha256: str, version: str, rule_key: str) -> None:
    existing = conn.execute(
        select(batches.c.id, batches.c.created_at)
        .where(
            batches.c.file_sha256 == file_sha256,
            batches.c.version == version,
            batches.c.rule_key == rule_key,
        )
        .order_by(batches.c.created_at)
    ).first()
    if existing is not None:
        raise AlreadyRecorded(
            f"This file was already recorded with this model version and rule, as batch {existing[0]} "
            f"({existing[1]:%Y-%m-%d %H:%M}). It was not recorded again.",
            existing[0],
        )


@_guard
def list_batches(url: str | None = None, limit: int = 500) -> list[BatchRecord]:
    """Most recent batches first."""
    cols = [c for c in batches.c if c.name not in ("results_csv", "rejects_csv")]
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(*cols).order_by(batches.c.created_at.desc()).limit(limit)).mappings().all()
    return [BatchRecord(**dict(r)) for r in rows]


@_guard
def get_batch(batch_id: str, url: str | None = None) -> BatchRecord:
    cols = [c for c in batches.c if c.name not in ("results_csv", "rejects_csv")]
    with get_engine(url).connect() as conn:
        row = conn.execute(select(*cols).where(batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise BadRequest(f"No recorded batch {batch_id}.")
    return BatchRecord(**dict(row))


@_guard
def recent_eins(days: int = 365, url: str | None = None, exclude: str | None = None) -> set[str]:
    """EINs in the results of batches recorded in the last ``days`` days (``exclude``: a file sha256)."""
    from datetime import timedelta

    since = datetime.now(UTC) - timedelta(days=days)
    found: set[str] = set()
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            select(batches.c.results_csv, batches.c.file_sha256).where(batches.c.created_at >= since)
        )
        for blob, sha in rows:
            if sha == exclude:
                continue
            try:
                frame = pd.read_csv(
                    io.BytesIO(bytes(blob)), dtype=str, keep_default_na=False, usecols=["EIN"]
                )
            except ValueError:  # no EIN column in that batch
                continue
            found.update(e.strip() for e in frame["EIN"] if e.strip())
    return found


@_guard
def versions_used(url: str | None = None) -> set[str]:
    """Model versions that scored at least one recorded batch."""
    with get_engine(url).connect() as conn:
        return {r[0] for r in conn.execute(select(batches.c.version).distinct())}


@_guard
def batch_files(batch_id: str, url: str | None = None) -> tuple[bytes, bytes]:
    """The exact results and rejects bytes stored for a batch."""
    with get_engine(url).connect() as conn:
        row = conn.execute(
            select(batches.c.results_csv, batches.c.rejects_csv).where(batches.c.id == batch_id)
        ).first()
    if row is None:
        raise BadRequest(f"No recorded batch {batch_id}.")
    return bytes(row[0]), bytes(row[1])


# -- outcomes ------------------------------------------------------------------------------------
@_guard
def add_outcomes(
    batch_id: str,
    *,
    user: str,
    file_name: str,
    joined_on: str,
    summary: dict,
    outcomes_csv: bytes,
    replace: bool = False,
    url: str | None = None,
) -> None:
    """Attach outcomes that arrived for a recorded batch. A batch that has outcomes is refused unless
    ``replace``; the replaced set is kept, marked replaced (when and by whom), never deleted."""
    now = datetime.now(UTC)
    who = clean_text(user, 120)
    try:
        with get_engine(url).begin() as conn:
            exists = conn.execute(select(func.count()).where(batches.c.id == batch_id)).scalar()
            if not exists:
                raise BadRequest(f"No recorded batch {batch_id}.")
            current = _current_outcomes(conn, batch_id)
            if current is not None and not replace:
                raise _has_outcomes(batch_id, current)
            if current is not None:
                conn.execute(
                    outcomes.update()
                    .where(outcomes.c.batch_id == batch_id, outcomes.c.replaced_at.is_(None))
                    .values(replaced_at=now, replaced_by=who)
                )
            conn.execute(
                outcomes.insert().values(
                    batch_id=batch_id,
                    created_at=now,
                    user=who,
                    file_name=clean_text(file_name or "outcomes.csv", 255) or "outcomes.csv",
                    joined_on=joined_on,
                    summary=to_json(summary),
                    outcomes_csv=outcomes_csv,
                )
            )
    except IntegrityError:  # another writer attached a set at the same moment
        with get_engine(url).connect() as conn:
            current = _current_outcomes(conn, batch_id)
        if current is None:
            raise
        raise _has_outcomes(batch_id, current) from None
    maybe_backup(url)


@_guard
def refuse_if_outcomes(batch_id: str, url: str | None = None) -> None:
    """BadRequest naming the current outcomes set when the batch has one."""
    with get_engine(url).connect() as conn:
        current = _current_outcomes(conn, batch_id)
    if current is not None:
        raise _has_outcomes(batch_id, current)


def _current_outcomes(conn, batch_id: str):
    return conn.execute(
        select(outcomes.c.created_at, outcomes.c.user).where(
            outcomes.c.batch_id == batch_id, outcomes.c.replaced_at.is_(None)
        )
    ).first()


def _has_outcomes(batch_id: str, current) -> BadRequest:
    return BadRequest(
        f"Batch {batch_id} already has outcomes (attached {current[0]:%Y-%m-%d %H:%M} by {current[1]}). "
        "Nothing was attached. To replace them, attach again with replace (CLI: --replace); the earlier "
        "set is kept and shown as replaced."
    )


@dataclass
class OutcomesRecord:
    batch_id: str
    created_at: datetime
    user: str
    file_name: str
    joined_on: str
    summary: dict
    replaced_at: datetime | None = None
    replaced_by: str | None = None

    @property
    def replaced(self) -> bool:
        return self.replaced_at is not None


def _outcomes_records(conn, where) -> list[OutcomesRecord]:
    cols = [c for c in outcomes.c if c.name not in ("outcomes_csv", "id")]
    rows = conn.execute(select(*cols).where(where).order_by(outcomes.c.id)).mappings().all()
    found = []
    for r in rows:
        try:
            summary = json.loads(r["summary"])
        except ValueError:
            raise StorageError(
                f"The outcomes attached to batch {r['batch_id']} on {r['created_at']:%Y-%m-%d %H:%M} are "
                "damaged (their stored summary is not valid JSON). They were kept as they are."
            ) from None
        found.append(OutcomesRecord(**{**dict(r), "summary": summary}))
    return found


@_guard
def latest_outcomes(url: str | None = None) -> dict[str, OutcomesRecord]:
    """The current (not replaced) outcomes of each batch, by batch id."""
    with get_engine(url).connect() as conn:
        return {r.batch_id: r for r in _outcomes_records(conn, outcomes.c.replaced_at.is_(None))}


@_guard
def list_outcomes(batch_id: str, url: str | None = None) -> list[OutcomesRecord]:
    """Every outcomes set attached to a batch, oldest first, replaced ones included."""
    with get_engine(url).connect() as conn:
        return _outcomes_records(conn, outcomes.c.batch_id == batch_id)


@_guard
def outcomes_frame(batch_id: str, url: str | None = None) -> pd.DataFrame | None:
    """source_line and IS_SUCCESSFUL of the current outcomes of a batch (None when none arrived)."""
    with get_engine(url).connect() as conn:
        blob = conn.execute(
            select(outcomes.c.outcomes_csv).where(
                outcomes.c.batch_id == batch_id, outcomes.c.replaced_at.is_(None)
            )
        ).scalar()
    if blob is None:
        return None
    return pd.read_csv(io.BytesIO(bytes(blob)))


# -- the review queue ----------------------------------------------------------------------------
@_guard
def add_review_items(batch_id: str, items: list[tuple[int, str]], url: str | None = None) -> int:
    """Queue rows of a batch for a human look (``(source_line, why)``); rows already queued are kept
    as they are. Returns how many were added."""
    now = datetime.now(UTC)
    with get_engine(url).begin() as conn:
        if not conn.execute(select(func.count()).where(batches.c.id == batch_id)).scalar():
            raise BadRequest(f"No recorded batch {batch_id}.")
        have = {
            r[0]
            for r in conn.execute(
                select(review_items.c.source_line).where(review_items.c.batch_id == batch_id)
            )
        }
        rows = [
            {"batch_id": batch_id, "source_line": int(line), "why": clean_text(why, 500), "created_at": now,
             "status": "open"}
            for line, why in items
            if int(line) not in have
        ]  # fmt: skip
        if rows:
            conn.execute(review_items.insert(), rows)
    if rows:
        maybe_backup(url)
    return len(rows)


@_guard
def list_review_items(batch_id: str | None = None, url: str | None = None) -> pd.DataFrame:
    """Queued rows, open first, then by batch and line."""
    query = select(review_items)
    if batch_id is not None:
        query = query.where(review_items.c.batch_id == batch_id)
    with get_engine(url).connect() as conn:
        rows = conn.execute(query.order_by(review_items.c.id)).mappings().all()
    frame = pd.DataFrame(rows, columns=[c.name for c in review_items.c])
    frame["_done"] = (frame["status"] != "open").astype(int)
    frame = frame.sort_values(["_done", "batch_id", "source_line"], kind="stable").drop(columns="_done")
    return frame.reset_index(drop=True)


def _item(conn, item_id: int) -> dict:
    row = conn.execute(select(review_items).where(review_items.c.id == int(item_id))).mappings().first()
    if row is None:
        raise BadRequest(f"No review item {item_id}.")
    return dict(row)


@_guard
def review_item(item_id: int, url: str | None = None) -> dict:
    """One review item (its batch, source_line, status and resolution)."""
    with get_engine(url).connect() as conn:
        return _item(conn, item_id)


@_guard
def assign_review(item_id: int, assignee: str, url: str | None = None) -> None:
    assignee = clean_text(assignee or "", 120).strip()
    if not assignee:
        raise BadRequest("Assign the item to someone (a user name).")
    with get_engine(url).begin() as conn:
        _item(conn, item_id)
        conn.execute(
            review_items.update().where(review_items.c.id == int(item_id)).values(assigned_to=assignee)
        )
    maybe_backup(url)


@_guard
def resolve_review(
    item_id: int,
    decision: str,
    reason: str,
    user: str,
    url: str | None = None,
    recommended: bool | None = None,
) -> bool:
    """Resolve a queued row with approve / decline / keep and a reason; in the same transaction a
    resolution that changes the row's current decision becomes its override (keep: back to the
    model's recommendation). ``recommended``: the row's recorded recommendation; when given, a
    resolution that confirms the current decision is recorded on the item only, not as an override.
    Returns whether an override was recorded."""
    if decision not in REVIEW_DECISIONS:
        raise BadRequest("A review is resolved with approve, decline or keep.")
    reason = clean_text(reason or "", 2000).strip()
    if not reason:
        raise BadRequest("A review resolution needs a reason.")
    now = datetime.now(UTC)
    with get_engine(url).connect() as conn:
        batch_id = _item(conn, item_id)["batch_id"]  # an item's batch never changes
    with get_engine(url).begin() as conn:
        # the first statement is a write: the batch's write lock (as in add_override), so the row's
        # current decision cannot change under us and SQLite never has to upgrade a read lock
        conn.execute(batches.update().where(batches.c.id == batch_id).values(id=batches.c.id))
        item = _item(conn, item_id)
        if item["status"] == "resolved":
            raise BadRequest(f"Review item {item_id} is already resolved ({item['decision']}).")
        conn.execute(
            review_items.update()
            .where(review_items.c.id == int(item_id))
            .values(status="resolved", decision=decision, reason=reason, resolved_by=clean_text(user, 120),
                    resolved_at=now, assigned_to=item["assigned_to"] or clean_text(user, 120))
        )  # fmt: skip
        wanted, changes = REVIEW_DECISIONS[decision], True
        if recommended is not None:
            overridden, current = _current_decision(
                conn, item["batch_id"], int(item["source_line"]), recommended
            )
            changes = overridden if wanted == -1 else bool(wanted) != current
        if changes:
            conn.execute(
                overrides.insert().values(
                    batch_id=item["batch_id"], row=int(item["source_line"]), decision=wanted,
                    reason=f"review: {reason}", user=clean_text(user, 120), created_at=now,
                )
            )  # fmt: skip
    maybe_backup(url)
    return changes


@_guard
def review_counts(url: str | None = None) -> dict[str, tuple[int, int]]:
    """(open, resolved) review items per batch."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            select(review_items.c.batch_id, review_items.c.status, func.count()).group_by(
                review_items.c.batch_id, review_items.c.status
            )
        ).all()
    out: dict[str, list[int]] = {}
    for batch_id, status, count in rows:
        pair = out.setdefault(batch_id, [0, 0])
        pair[0 if status == "open" else 1] += int(count)
    return {k: (v[0], v[1]) for k, v in out.items()}


# -- overrides -----------------------------------------------------------------------------------
def _current_decision(conn: object, batch_id: str, row: int, recommended: bool) -> tuple[bool, bool]:
    """(whether the row has an override in force, its current decision) inside a transaction."""
    latest = conn.execute(
        select(overrides.c.decision)
        .where(overrides.c.batch_id == batch_id, overrides.c.row == int(row))
        .order_by(overrides.c.id.desc())
        .limit(1)
    ).scalar()
    overridden = latest is not None and latest != -1
    return overridden, bool(latest) if overridden else bool(recommended)


@_guard
def add_override(
    batch_id: str,
    row: int,
    decision: int,
    reason: str,
    user: str,
    url: str | None = None,
    recommended: bool | None = None,
    who: str | None = None,
) -> None:
    """Record a staff override of one applicant (by source_line), with who and why.

    ``decision``: 1 approve, 0 decline, -1 undo the override (back to the model's recommendation).
    ``recommended``: the row's recorded recommendation; when given, an override that would not change
    the row's current decision (or an undo with no override to undo) is refused, checked in the same
    transaction as the write, so two people overriding one row at once cannot both record it.
    ``who``: how a refusal names the applicant (default "Line N").
    """
    if decision not in OVERRIDE_WORDS:
        raise BadRequest("An override decision is 1 (approve), 0 (decline) or -1 (undo).")
    reason = clean_text(reason or "", 2000).strip()
    if not reason:
        raise BadRequest("An override needs a reason.")
    with get_engine(url).begin() as conn:
        # the first statement is a write: it takes the write lock (SQLite: the database's; PostgreSQL:
        # this batch's row) until commit, so the check below sees every override committed before it
        locked = conn.execute(batches.update().where(batches.c.id == batch_id).values(id=batches.c.id))
        if not locked.rowcount:
            raise BadRequest(f"No recorded batch {batch_id}.")
        if recommended is not None:
            overridden, current = _current_decision(conn, batch_id, int(row), recommended)
            who = who or f"Line {int(row)}"
            if decision == -1 and not overridden:
                raise BadRequest(f"{who} has no override to undo. Nothing was saved.")
            if decision != -1 and bool(decision) == current:
                state = "already recommended" if current else "already not recommended"
                raise BadRequest(
                    f"{who} is {state}; an override must change the decision. Nothing was saved."
                )
        conn.execute(
            overrides.insert().values(
                batch_id=batch_id,
                row=int(row),
                decision=int(decision),
                reason=reason,
                user=clean_text(user, 120),
                created_at=datetime.now(UTC),
            )
        )
    maybe_backup(url)


@_guard
def list_overrides(batch_id: str, url: str | None = None) -> pd.DataFrame:
    """Overrides of a batch, in the order they were made."""
    with get_engine(url).connect() as conn:
        rows = (
            conn.execute(
                select(
                    overrides.c.row,
                    overrides.c.decision,
                    overrides.c.reason,
                    overrides.c.user,
                    overrides.c.created_at,
                )
                .where(overrides.c.batch_id == batch_id)
                .order_by(overrides.c.id)
            )
            .mappings()
            .all()
        )
    return pd.DataFrame(rows, columns=["row", "decision", "reason", "user", "created_at"])


@_guard
def override_counts(url: str | None = None) -> dict[str, int]:
    """Overrides made (approve or decline; undos not counted) per batch."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            select(overrides.c.batch_id, func.count())
            .where(overrides.c.decision >= 0)
            .group_by(overrides.c.batch_id)
        ).all()
    return {b: int(n) for b, n in rows}


@_guard
def outcome_counts(url: str | None = None) -> dict[str, int]:
    """Outcomes sets attached per batch, replaced ones included."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(outcomes.c.batch_id, func.count()).group_by(outcomes.c.batch_id)).all()
    return {b: int(n) for b, n in rows}


def stored_results(batch_id: str, url: str | None = None) -> pd.DataFrame:
    """The stored results of a batch as text, every cell as it was written (the one parse of them)."""
    results, _ = batch_files(batch_id, url)
    return pd.read_csv(io.BytesIO(results), dtype=str, keep_default_na=False)


def results_with_overrides(batch_id: str, url: str | None = None) -> pd.DataFrame:
    """The stored results plus the override columns (the latest override per row wins):
    ``override`` (none/approve/decline), ``final_decision`` (0/1), ``override_reason``, ``_by``, ``_at``."""
    frame = stored_results(batch_id, url)
    key = "source_line" if "source_line" in frame else None
    if key is None:  # recorded before rows carried their source line: address by rank
        frame.insert(0, "row", [str(i) for i in range(1, len(frame) + 1)])
        key = "row"
    recommended = "recommended" if "recommended" in frame else None
    ov = list_overrides(batch_id, url)
    word = pd.Series("none", index=frame.index, dtype=object)
    reason = pd.Series("", index=frame.index, dtype=object)
    by = pd.Series("", index=frame.index, dtype=object)
    at = pd.Series("", index=frame.index, dtype=object)
    if len(ov):
        latest = ov.groupby("row").tail(1).set_index("row")
        keys = pd.to_numeric(frame[key], errors="coerce")
        hit = keys.isin(latest.index)
        picked = keys[hit].astype(int)
        word[hit] = picked.map(latest["decision"]).map(OVERRIDE_WORDS).to_numpy()
        reason[hit] = picked.map(latest["reason"]).to_numpy()
        by[hit] = picked.map(latest["user"]).to_numpy()
        at[hit] = picked.map(latest["created_at"]).astype(str).to_numpy()
    base = frame[recommended].astype(int) if recommended else pd.Series(0, index=frame.index)
    final = base.where(word == "none", (word == "approve").astype(int))
    frame["override"] = word
    frame["final_decision"] = final.astype(int)
    frame["override_reason"] = reason
    frame["override_by"] = by
    frame["override_at"] = at
    return frame


# -- backups ------------------------------------------------------------------------------------
def backup(url: str | None = None) -> Path:
    """An online backup of the SQLite record into ``backups/`` (0600), keeping the newest BACKUP_KEEP."""
    url = url or config.database_url()
    path = _sqlite_path(url)
    if path is None:
        raise BadRequest("Backups here are for the SQLite record; back up PostgreSQL with pg_dump.")
    if not path.exists() or path.stat().st_size == 0:
        raise StorageError(f"There is no batch record at {path} to back up.")
    folder = backups_dir(url)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    dest = folder / f"screening-{stamp}.db"
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as src, contextlib.closing(
        sqlite3.connect(dest)
    ) as dst:  # fmt: skip
        src.backup(dst)
    for old in _backups(url)[:-BACKUP_KEEP]:
        old.unlink(missing_ok=True)
    return dest


def maybe_backup(url: str | None = None) -> Path | None:
    """Back up after a write when the newest backup is older than ``SCREENING_BACKUP_INTERVAL_S``."""
    url = url or config.database_url()
    if _sqlite_path(url) is None:
        return None
    interval = float(os.environ.get("SCREENING_BACKUP_INTERVAL_S", "3600"))
    existing = _backups(url)
    if existing and time.time() - existing[-1].stat().st_mtime < interval:
        return None
    try:
        return backup(url)
    except (StorageError, sqlite3.Error, OSError) as err:
        log.error("automatic backup failed: %s", type(err).__name__)
        return None


def restore(source: Path | None = None, url: str | None = None) -> tuple[Path, Path | None]:
    """Put a backup (default: the newest) in place of the record; the current file, damaged or not,
    is kept beside it as ``<name>.damaged-<time>``. Returns (backup used, file kept aside)."""
    url = url or config.database_url()
    path = _sqlite_path(url)
    if path is None:
        raise BadRequest("Restore here is for the SQLite record; restore PostgreSQL with pg_restore.")
    candidates = [Path(source)] if source else _backups(url)
    if not candidates or not candidates[-1].is_file():
        raise StorageError(f"No backup found in {backups_dir(url)}.")
    chosen = candidates[-1]
    with contextlib.closing(sqlite3.connect(f"file:{chosen}?mode=ro", uri=True)) as conn:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise StorageError(f"The backup {chosen} failed its integrity check; choose another with --from.")
    reset_engines()
    kept = None
    if path.exists():
        kept = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        path.rename(kept)
        os.chmod(kept, 0o600)
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if extra.exists():
            extra.rename(extra.with_name(f"{extra.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S}"))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with contextlib.closing(sqlite3.connect(chosen)) as src, contextlib.closing(sqlite3.connect(tmp)) as dst:
        src.backup(dst)
    os.replace(tmp, path)
    return chosen, kept
