"""The record of scored batches and staff overrides (SQLAlchemy; SQLite WAL by default).

Every batch keeps the exact bytes of its results as first produced, so History can hand
them out again after a restart. Writes happen in one transaction: a crash mid-save leaves
the whole batch or nothing. A deployment can point ``SCREENING_DB_URL`` at PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine

from core import config

metadata = MetaData()

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
)

overrides = Table(
    "overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), ForeignKey("batches.id"), nullable=False, index=True),
    Column("row", Integer, nullable=False),
    Column("decision", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("user", String(120), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


_engine_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """One engine per database URL; SQLite gets WAL and a busy timeout for concurrent writers."""
    url = url or config.database_url()
    with _engine_lock:  # concurrent first calls must not both create the tables
        return _engine(url)


def reset_engines() -> None:
    """Forget cached engines (a test simulating a restart, or a changed URL)."""
    with _engine_lock:
        _engine.cache_clear()


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # pragma: no cover - exercised via connections
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


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


def record_batch(
    *,
    user: str,
    file_name: str,
    file_bytes: bytes,
    counts: dict,
    variant: str,
    version: str,
    mode: str,
    threshold: float | None,
    budget: float | None,
    selected: int,
    results_csv: bytes,
    rejects_csv: bytes,
    url: str | None = None,
) -> str:
    """Store a scored batch in one transaction; returns its id."""
    batch_id = str(uuid.uuid4())
    row = {
        "id": batch_id,
        "created_at": datetime.now(UTC),
        "user": user[:120],
        "file_name": (file_name or "upload.csv")[:255],
        "file_sha256": hashlib.sha256(file_bytes).hexdigest(),
        "rows": int(counts["rows"]),
        "accepted": int(counts["accepted"]),
        "rejected": int(counts["rejected"]),
        "warned": int(counts["with_warnings"]),
        "variant": variant,
        "version": version,
        "mode": mode,
        "threshold": threshold,
        "budget": budget,
        "selected": int(selected),
        "results_csv": results_csv,
        "rejects_csv": rejects_csv,
    }
    with get_engine(url).begin() as conn:
        conn.execute(batches.insert().values(**row))
    return batch_id


def list_batches(url: str | None = None, limit: int = 500) -> list[BatchRecord]:
    """Most recent batches first."""
    cols = [c for c in batches.c if c.name not in ("results_csv", "rejects_csv")]
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(*cols).order_by(batches.c.created_at.desc()).limit(limit)).mappings().all()
    return [BatchRecord(**dict(r)) for r in rows]


def batch_files(batch_id: str, url: str | None = None) -> tuple[bytes, bytes]:
    """The exact results and rejects bytes stored for a batch."""
    with get_engine(url).connect() as conn:
        row = conn.execute(
            select(batches.c.results_csv, batches.c.rejects_csv).where(batches.c.id == batch_id)
        ).first()
    if row is None:
        raise KeyError(f"no batch {batch_id}")
    return bytes(row[0]), bytes(row[1])


def add_override(
    batch_id: str, row: int, decision: int, reason: str, user: str, url: str | None = None
) -> None:
    """Record a staff override of one applicant's recommendation, with who and why."""
    if decision not in (0, 1):
        raise ValueError("decision must be 0 (do not fund) or 1 (fund)")
    if not reason.strip():
        raise ValueError("an override needs a reason")
    with get_engine(url).begin() as conn:
        exists = conn.execute(select(func.count()).where(batches.c.id == batch_id)).scalar()
        if not exists:
            raise KeyError(f"no batch {batch_id}")
        conn.execute(
            overrides.insert().values(
                batch_id=batch_id,
                row=int(row),
                decision=int(decision),
                reason=reason.strip()[:2000],
                user=user[:120],
                created_at=datetime.now(UTC),
            )
        )


def list_overrides(batch_id: str, url: str | None = None) -> pd.DataFrame:
    """Overrides of a batch, latest per row last."""
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


def results_with_overrides(batch_id: str, url: str | None = None) -> pd.DataFrame:
    """The stored results plus override columns (the latest override per row wins)."""
    results, _ = batch_files(batch_id, url)
    frame = pd.read_csv(io.BytesIO(results), dtype=str, keep_default_na=False)
    frame.insert(0, "row", range(1, len(frame) + 1))
    ov = list_overrides(batch_id, url)
    frame["override_decision"] = ""
    frame["override_reason"] = ""
    frame["override_by"] = ""
    frame["override_at"] = ""
    if len(ov):
        latest = ov.groupby("row").tail(1).set_index("row")
        idx = frame["row"].isin(latest.index)
        rows = frame.loc[idx, "row"]
        frame.loc[idx, "override_decision"] = rows.map(latest["decision"]).astype(str).to_numpy()
        frame.loc[idx, "override_reason"] = rows.map(latest["reason"]).to_numpy()
        frame.loc[idx, "override_by"] = rows.map(latest["user"]).to_numpy()
        frame.loc[idx, "override_at"] = rows.map(latest["created_at"]).astype(str).to_numpy()
    return frame
