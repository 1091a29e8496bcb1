"""The batch record: survives restarts, is all-or-nothing, never silently loses a batch, on SQLite and
PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy

from core import batch, storage
from core.config import PROJECT_ROOT
from core.decisions import Rule
from core.errors import BadRequest, StorageError
from core.synthetic import sample_applicants
from tests.conftest import bundle_of

PG_URL = os.environ.get("SCREENING_TEST_PG_URL", "")


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'screening.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    if not PG_URL:
        pytest.skip("no local PostgreSQL (SCREENING_TEST_PG_URL unset; .ci/run starts one)")
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.begin() as conn:  # a clean database for each test
        conn.execute(
            sqlalchemy.text("DROP TABLE IF EXISTS review_items, outcomes, overrides, batches CASCADE")
        )
    engine.dispose()
    storage.reset_engines()
    return PG_URL


def record(
    url: str, results: bytes = b"a,b\n1,2\n", user: str = "sam", name: str = "f.csv", sha: str = ""
) -> str:
    return storage.record_batch(
        user=user,
        file_name=name,
        file_sha256=sha or hashlib.sha256(f"{name}{uuid.uuid4()}".encode()).hexdigest(),
        counts={"rows": 3, "accepted": 2, "rejected": 1, "with_warnings": 0},
        variant="tuned",
        version="tuned-1",
        live=True,
        rule=Rule("threshold", threshold=0.5),
        selected=1,
        results_csv=results,
        rejects_csv=b"source_line,reason\n3,bad\n",
        url=url,
    )


def test_round_trip(db_url: str) -> None:
    batch_id = record(db_url)
    [rec] = storage.list_batches(db_url)
    assert rec.id == batch_id and rec.user == "sam" and rec.rows == 3 and rec.live == 1
    assert rec.rule_key == "threshold:0.500000" and rec.rule_text() == "threshold 0.50"
    assert storage.batch_files(batch_id, db_url) == (b"a,b\n1,2\n", b"source_line,reason\n3,bad\n")
    assert storage.versions_used(db_url) == {"tuned-1"}


def test_sqlite_is_wal_and_private(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    record(url)
    with storage.get_engine(url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "screening.db").stat().st_mode & 0o777 == 0o600


def test_same_file_version_and_rule_is_recorded_once(db_url: str) -> None:
    first = record(db_url, sha="a" * 64)
    with pytest.raises(BadRequest, match=f"already recorded .* as batch {first}"):
        record(db_url, sha="a" * 64)
    assert [r.id for r in storage.list_batches(db_url)] == [first]


def test_nul_and_control_characters_are_stripped(db_url: str) -> None:
    batch_id = record(db_url, user="sam\x00", name="bad\x00name\x07.csv")
    storage.add_override(batch_id, 2, 1, "known\x00 to us\x1b", "ana", db_url)
    [rec] = storage.list_batches(db_url)
    assert rec.file_name == "badname.csv" and rec.user == "sam"
    assert storage.list_overrides(batch_id, db_url)["reason"].tolist() == ["known to us"]


def test_new_process_reads_what_the_old_one_wrote(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from tests.unit.test_storage import record; "
        "print(record(sys.argv[1], b'exact,bytes\\n\\xc3\\xa9\\n'))"
    )
    written = subprocess.run(
        [sys.executable, "-c", code, url, str(PROJECT_ROOT)], capture_output=True, text=True, check=True
    ).stdout.strip()
    storage.reset_engines()
    read = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[3]); from core import storage; "
         "sys.stdout.buffer.write(storage.batch_files(sys.argv[2], sys.argv[1])[0])", url, written,
         str(PROJECT_ROOT)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert read == "exact,bytes\né\n".encode()


def test_crash_mid_write_leaves_nothing(db_url: str) -> None:
    # the power goes after the batch's row was written but before the commit: nothing of it stays
    record(db_url)
    engine = storage.get_engine(db_url)
    written: list[str] = []

    def crash(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO batches"):
            written.append(statement)
            raise RuntimeError("power cut")

    sqlalchemy.event.listen(engine, "after_cursor_execute", crash)
    try:
        with pytest.raises(RuntimeError):
            record(db_url, name="second.csv")
    finally:
        sqlalchemy.event.remove(engine, "after_cursor_execute", crash)
    assert len(written) == 1  # the INSERT ran
    assert [r.file_name for r in storage.list_batches(db_url)] == ["f.csv"]


def test_crash_between_the_two_writes_of_a_replacement_keeps_the_current_outcomes(db_url: str) -> None:
    batch_id = record(db_url)
    storage.add_outcomes(
        batch_id, user="ana", file_name="first.csv", joined_on="EIN", summary={"n_matched": 1},
        outcomes_csv=b"source_line,IS_SUCCESSFUL\n2,1\n", url=db_url,
    )  # fmt: skip
    engine = storage.get_engine(db_url)
    steps: list[str] = []

    def crash(conn, cursor, statement, *args):
        steps.append(statement.split()[0])
        if statement.startswith("INSERT INTO outcomes"):
            raise RuntimeError("power cut")

    sqlalchemy.event.listen(engine, "after_cursor_execute", crash)
    try:
        with pytest.raises(RuntimeError):
            storage.add_outcomes(
                batch_id, user="bo", file_name="second.csv", joined_on="EIN", summary={"n_matched": 2},
                outcomes_csv=b"source_line,IS_SUCCESSFUL\n2,0\n", replace=True, url=db_url,
            )  # fmt: skip
    finally:
        sqlalchemy.event.remove(engine, "after_cursor_execute", crash)
    assert "UPDATE" in steps and steps[-1] == "INSERT"  # the first set was marked replaced, then the cut
    [only] = storage.list_outcomes(batch_id, db_url)
    assert (only.file_name, only.replaced) == ("first.csv", False)


def test_killed_writer_leaves_whole_batches(tmp_path: Path) -> None:
    """Kill a process once it has committed some 20 MB batches and while it writes more: the kill
    must land mid-run, and every batch there is complete."""
    url = sqlite_url(tmp_path)
    storage.get_engine(url)
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from tests.unit.test_storage import record; "
        "[record(sys.argv[1], b'x' * 20_000_000, name=f'b{i}.csv') for i in range(200)]"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, url, str(PROJECT_ROOT)])
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        storage.reset_engines()
        if len(storage.list_batches(url)) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    storage.reset_engines()
    recs = storage.list_batches(url)
    assert 2 <= len(recs) < 200
    for rec in recs:
        assert storage.batch_files(rec.id, url)[0] == b"x" * 20_000_000


def test_overrides_by_source_line_with_undo(db_url: str) -> None:
    results = b"source_line,EIN,NAME,success_probability,recommended\n2,1,A,0.9,1\n4,2,B,0.2,0\n"
    batch_id = record(db_url, results=results)
    storage.add_override(batch_id, 4, 1, "Known to us: strong local record", "ana", db_url)
    storage.add_override(batch_id, 2, 0, "Duplicate application", "ana", db_url)
    frame = storage.results_with_overrides(batch_id, db_url)
    assert frame["override"].tolist() == ["decline", "approve"]
    assert frame["final_decision"].tolist() == [0, 1]
    assert frame["override_reason"].tolist() == ["Duplicate application", "Known to us: strong local record"]
    storage.add_override(batch_id, 2, -1, "Mistake, it is not a duplicate", "sam", db_url)
    frame = storage.results_with_overrides(batch_id, db_url)
    assert frame["override"].tolist() == ["none", "approve"] and frame["final_decision"].tolist() == [1, 1]
    with pytest.raises(BadRequest, match="needs a reason"):
        storage.add_override(batch_id, 2, 1, "   ", "ana", db_url)
    with pytest.raises(BadRequest, match="No recorded batch"):
        storage.add_override("no-such-batch", 2, 1, "x", "ana", db_url)
    assert storage.batch_files(batch_id, db_url)[0] == results


def test_empty_database_file_is_reported_and_kept(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    record(url)
    storage.reset_engines()
    path = tmp_path / "screening.db"
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        extra.unlink(missing_ok=True)
    path.write_bytes(b"")  # truncated to 0 bytes
    with pytest.raises(StorageError, match="is empty"):
        storage.list_batches(url)
    with pytest.raises(StorageError, match="is empty"):
        record(url)
    assert path.exists() and path.stat().st_size == 0  # kept, never recreated


def test_corrupt_database_is_reported_and_kept(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    path = tmp_path / "screening.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StorageError, match="is damaged"):
        storage.list_batches(url)
    assert path.read_bytes() == b"not a database at all" * 100


def test_backup_restore_after_damage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCREENING_BACKUP_INTERVAL_S", "0")
    url = sqlite_url(tmp_path)
    first = record(url)  # each write backs up (interval 0)
    backups = sorted((tmp_path / "backups").glob("screening-*.db"))
    assert len(backups) == 1 and backups[0].stat().st_mode & 0o777 == 0o600
    storage.reset_engines()
    path = tmp_path / "screening.db"
    path.unlink()
    Path(f"{path}-wal").unlink(missing_ok=True)
    Path(f"{path}-shm").unlink(missing_ok=True)
    with pytest.raises(StorageError, match="missing but backups exist"):
        storage.list_batches(url)
    assert not path.exists()
    path.write_bytes(b"")
    used, kept = storage.restore(url=url)
    assert used == backups[0] and kept is not None and kept.read_bytes() == b""
    assert [r.id for r in storage.list_batches(url)] == [first]


def test_rotation_keeps_the_newest(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(storage, "BACKUP_KEEP", 3)
    url = sqlite_url(tmp_path)
    record(url)
    made = [storage.backup(url) for _ in range(5)]
    assert sorted((tmp_path / "backups").glob("screening-*.db")) == made[-3:]


def test_database_errors_are_logged_without_values(tmp_path: Path, caplog, monkeypatch) -> None:
    url = sqlite_url(tmp_path)
    record(url)
    fixed = uuid.UUID(int=7)
    monkeypatch.setattr(storage.uuid, "uuid4", lambda: fixed)
    record(url, name="SECRET-APPLICANT-NAME.csv", sha="b" * 64)
    with caplog.at_level(logging.DEBUG), pytest.raises(StorageError, match="could not be read or written"):
        record(url, name="SECRET-APPLICANT-NAME.csv", sha="c" * 64)  # same id: the insert fails
    assert caplog.records and "SECRET-APPLICANT" not in caplog.text


def test_database_that_never_answers_times_out(monkeypatch) -> None:
    """A PostgreSQL address that accepts connections but never answers: a clear error within seconds."""
    pytest.importorskip("psycopg")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT_S", 2)
    started = time.perf_counter()
    try:
        with pytest.raises(StorageError, match="cannot be reached"):
            storage.list_batches(f"postgresql+psycopg://u:p@127.0.0.1:{port}/db")
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in held:
            conn.close()
    assert time.perf_counter() - started < 15


def test_twenty_concurrent_scorings_share_one_model(models_dir: Path, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    bundle = bundle_of(models_dir, "tuned")
    data = sample_applicants(200, random_state=3).to_csv(index=False).encode()
    results: list[bytes | None] = [None] * 20
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            scored = batch.score_upload(bundle, data, f"batch{i}.csv")
            selection = batch.decide(scored, Rule("threshold", threshold=0.4 + i / 100))
            results[i] = batch.results_csv(scored, selection)
            batch.record(scored, selection, f"user{i}", live=True, url=url)
        except BaseException as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    recs = storage.list_batches(url)
    assert len(recs) == 20 and {r.user for r in recs} == {f"user{i}" for i in range(20)}
    for rec in recs:
        i = int(rec.user.removeprefix("user"))
        assert storage.batch_files(rec.id, url)[0] == results[i]
    probabilities = {r.split(b"\n", 2)[1].split(b",")[3] for r in results}
    assert len(probabilities) == 1 and np.isfinite(float(probabilities.pop()))


def test_monitoring_outcomes_and_review_round_trip(db_url: str) -> None:
    """The newer tables and column on both backends: monitoring JSON (NaN stored as null), outcomes,
    the review queue and its resolution as an override."""
    results = b"source_line,EIN,success_probability,recommended\n2,11,0.8,1\n3,12,0.3,0\n4,13,0.55,1\n"
    batch_id = storage.record_batch(
        user="sam", file_name="m.csv", file_sha256=hashlib.sha256(b"m").hexdigest(),
        counts={"rows": 3, "accepted": 3, "rejected": 0, "with_warnings": 0}, variant="tuned",
        version="tuned-1", live=True, rule=Rule("threshold", threshold=0.5), selected=2,
        results_csv=results, rejects_csv=b"", monitoring={"estimate": {"accuracy": float("nan"), "n": 3}},
        url=db_url,
    )  # fmt: skip
    assert storage.get_batch(batch_id, db_url).monitoring_data() == {"estimate": {"accuracy": None, "n": 3}}
    storage.add_outcomes(
        batch_id, user="bo\x00", file_name="o.csv", joined_on="EIN", summary={"accuracy": 0.5},
        outcomes_csv=b"source_line,IS_SUCCESSFUL\n2,1\n3,1\n", url=db_url,
    )  # fmt: skip
    arrived = storage.latest_outcomes(db_url)[batch_id]
    assert (arrived.user, arrived.joined_on, arrived.summary) == ("bo", "EIN", {"accuracy": 0.5})
    assert storage.outcomes_frame(batch_id, db_url)["IS_SUCCESSFUL"].tolist() == [1, 1]
    assert storage.add_review_items(batch_id, [(3, "near the line"), (4, "duplicate")], db_url) == 2
    assert storage.add_review_items(batch_id, [(3, "near the line")], db_url) == 0
    items = storage.list_review_items(batch_id, db_url).set_index("source_line")
    storage.resolve_review(int(items.loc[3, "id"]), "approve", "strong case", "cy", db_url)
    assert storage.review_counts(db_url) == {batch_id: (1, 1)}
    current = storage.results_with_overrides(batch_id, db_url).set_index("source_line")
    assert (
        current.loc["3", "final_decision"] == 1
        and current.loc["3", "override_reason"] == "review: strong case"
    )


# -- "once", enforced by the database -------------------------------------------------------------
RACER = """
import sys, time
from core import storage
from core.decisions import Rule
from core.errors import BadRequest
url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
try:
    batch_id = storage.record_batch(
        user="racer", file_name="same.csv", file_sha256="ab" * 32,
        counts={"rows": 2, "accepted": 2, "rejected": 0, "with_warnings": 0},
        variant="tuned", version="tuned-1", live=True, rule=Rule("threshold", threshold=0.5), selected=1,
        results_csv=b"a\\n1\\n", rejects_csv=b"", url=url,
    )
    print("stored", batch_id)
except BadRequest as err:
    print("refused", err.batch_id)
"""


def race(script: str, *args: str, n: int = 5) -> list[str]:
    """Run ``n`` processes of ``script`` that all start its work at the same moment (the last argument
    is that moment); each must exit cleanly. Their outputs, in start order."""
    start = time.time() + 4
    racers = [
        subprocess.Popen([sys.executable, "-c", script, *args, str(start)], cwd=PROJECT_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]  # fmt: skip
    said = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        said.append(out)
    return said


def test_processes_recording_one_file_at_once_store_one_batch(db_url: str) -> None:
    storage.get_engine(db_url)  # the tables exist before the race
    said = [out.split() for out in race(RACER, db_url)]
    storage.reset_engines()
    [stored] = storage.list_batches(db_url)
    assert sorted(w for w, _ in said) == ["refused"] * 4 + ["stored"]
    assert {i for _, i in said} == {stored.id}  # every refusal names the batch that holds the file


OVERRIDER = """
import sys, time
from core import storage
from core.errors import BadRequest
url, batch_id, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
try:  # line 2 was recommended: decline it, as everyone else is doing at the same moment
    storage.add_override(batch_id, 2, 0, "seen twice", "racer", url, recommended=True)
    print("saved")
except BadRequest as err:
    print("refused", "already not recommended" in str(err))
"""


def test_people_overriding_one_row_at_once_record_one_override(db_url: str) -> None:
    batch_id = record(db_url, results=b"source_line,recommended\n2,1\n3,0\n")
    with pytest.raises(BadRequest, match="Line 3 is already not recommended"):
        storage.add_override(batch_id, 3, 0, "no", "sam", db_url, recommended=False)
    with pytest.raises(BadRequest, match="Line 2 has no override to undo"):
        storage.add_override(batch_id, 2, -1, "no", "sam", db_url, recommended=True)
    storage.reset_engines()
    said = [out.strip() for out in race(OVERRIDER, db_url, batch_id)]
    storage.reset_engines()
    assert sorted(said) == ["refused True"] * 4 + ["saved"]
    stored = storage.list_overrides(batch_id, db_url)
    assert stored[["row", "decision"]].values.tolist() == [[2, 0]]


RESOLVER = """
import sys, time
from core import storage
from core.errors import BadRequest
url, item, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
try:  # line 2 was recommended: everyone declines it through the review item at the same moment
    changed = storage.resolve_review(item, "decline", "seen twice", "racer", url, recommended=True)
    print("overridden" if changed else "kept")
except BadRequest as err:
    print("refused", "already resolved" in str(err))
"""


def test_people_resolving_one_review_item_at_once_resolve_it_once(db_url: str) -> None:
    batch_id = record(db_url, results=b"source_line,recommended\n2,1\n3,0\n")
    assert storage.add_review_items(batch_id, [(2, "near the line")], db_url) == 1
    item = int(storage.list_review_items(batch_id, db_url)["id"].iloc[0])
    storage.reset_engines()
    said = [out.strip() for out in race(RESOLVER, db_url, str(item))]
    storage.reset_engines()
    assert sorted(said) == ["overridden"] + ["refused True"] * 4
    assert storage.list_overrides(batch_id, db_url)[["row", "decision"]].values.tolist() == [[2, 0]]
    assert storage.review_counts(db_url) == {batch_id: (0, 1)}


def test_a_record_with_duplicates_from_before_once_is_migrated_without_losing_any(db_url: str) -> None:
    first = record(db_url, sha="cd" * 32)
    later = storage.get_batch(first, db_url).created_at + datetime.timedelta(seconds=1)
    engine = storage.get_engine(db_url)
    with engine.begin() as conn:  # the record as an earlier version left it: no rule, a second copy
        conn.execute(sqlalchemy.text("DROP INDEX uq_batches_once"))
        conn.execute(sqlalchemy.text("ALTER TABLE batches DROP COLUMN legacy_duplicate"))
        copy = (
            "INSERT INTO batches SELECT 'copy-of-first', created_at, \"user\", 'again.csv', file_sha256, "
            "rows, accepted, rejected, warned, variant, version, mode, threshold, budget, selected, "
            "results_csv, rejects_csv, rank_by, rule_key, live, monitoring FROM batches WHERE id = :id"
        )
        conn.execute(sqlalchemy.text(copy), {"id": first})
        table = storage.batches
        conn.execute(table.update().where(table.c.id == "copy-of-first").values(created_at=later))
    storage.reset_engines()
    kept = {r.id: r.legacy_duplicate for r in storage.list_batches(db_url)}
    assert kept == {first: None, "copy-of-first": 1}  # both kept; the later copy marked
    with pytest.raises(BadRequest, match=f"as batch {first}"):
        record(db_url, sha="cd" * 32)
    record(db_url, sha="ef" * 32)
    assert len(storage.list_batches(db_url)) == 3


def test_outcomes_twice_are_refused_unless_replaced_and_the_replaced_set_is_kept(db_url: str) -> None:
    batch_id = record(db_url)

    def attach(name: str, replace: bool = False) -> None:
        storage.add_outcomes(
            batch_id, user="ana", file_name=name, joined_on="EIN", summary={"n_matched": 1, "accuracy": 1.0},
            outcomes_csv=b"source_line,IS_SUCCESSFUL\n2,1\n", replace=replace, url=db_url,
        )  # fmt: skip

    attach("first.csv")
    with pytest.raises(BadRequest, match=r"already has outcomes .* Nothing was attached"):
        attach("second.csv")
    assert [o.file_name for o in storage.list_outcomes(batch_id, db_url)] == ["first.csv"]
    attach("third.csv", replace=True)
    sets = storage.list_outcomes(batch_id, db_url)
    assert [(o.file_name, o.replaced) for o in sets] == [("first.csv", True), ("third.csv", False)]
    assert sets[0].replaced_by == "ana"
    assert storage.latest_outcomes(db_url)[batch_id].file_name == "third.csv"


def test_every_kind_of_write_takes_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqlite_url(tmp_path)
    monkeypatch.setenv("SCREENING_BACKUP_INTERVAL_S", "0")
    batch_id = record(url)
    count = lambda: len(list(storage.backups_dir(url).glob("screening-*.db")))  # noqa: E731
    before = count()
    storage.add_override(batch_id, 2, 1, "known to us", "ana", url)
    assert count() == before + 1
    storage.add_review_items(batch_id, [(2, "near the line")], url)
    assert count() == before + 2
    item = int(storage.list_review_items(batch_id, url)["id"][0])
    storage.assign_review(item, "bo", url)
    assert count() == before + 3
