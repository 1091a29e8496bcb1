"""The batch record: survives restarts, is all-or-nothing, and holds up under concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy

from core import storage
from core.config import PROJECT_ROOT
from core.reading import read_table
from tests.conftest import bundle_of
from core.scoring import PROBABILITY, score_frame, to_csv_bytes
from core.synthetic import sample_applicants


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'screening.db'}"


def record(url: str, results: bytes = b"a,b\n1,2\n", user: str = "sam", name: str = "f.csv") -> str:
    return storage.record_batch(
        user=user,
        file_name=name,
        file_bytes=b"raw upload",
        counts={"rows": 3, "accepted": 2, "rejected": 1, "with_warnings": 0},
        variant="tuned",
        version="tuned-1",
        mode="threshold",
        threshold=0.5,
        budget=None,
        selected=1,
        results_csv=results,
        rejects_csv=b"line,reason\n3,bad\n",
        url=url,
    )


def test_round_trip_and_wal(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    batch_id = record(url)
    [rec] = storage.list_batches(url)
    assert rec.id == batch_id and rec.user == "sam" and rec.rows == 3
    assert len(rec.file_sha256) == 64
    assert storage.batch_files(batch_id, url) == (b"a,b\n1,2\n", b"line,reason\n3,bad\n")
    with storage.get_engine(url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_new_process_reads_what_the_old_one_wrote(tmp_path: Path) -> None:
    url = db_url(tmp_path)
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


def test_crash_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = db_url(tmp_path)
    record(url)
    engine = storage.get_engine(url)

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def crash(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO batches"):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        record(url, name="second.csv")
    sqlalchemy.event.remove(engine, "before_cursor_execute", crash)
    assert [r.file_name for r in storage.list_batches(url)] == ["f.csv"]


def test_killed_writer_leaves_whole_batch_or_nothing(tmp_path: Path) -> None:
    """A process killed while writing a 20 MB batch: afterwards the batch is complete or absent."""
    url = db_url(tmp_path)
    storage.get_engine(url)
    code = (
        "import sys, os, threading; sys.path.insert(0, sys.argv[2]); "
        "from tests.unit.test_storage import record; "
        "threading.Timer(0.05, lambda: os._exit(9)).start(); "
        "[record(sys.argv[1], b'x' * 20_000_000, name=f'b{i}.csv') for i in range(50)]"
    )
    subprocess.run([sys.executable, "-c", code, url, str(PROJECT_ROOT)], capture_output=True)
    storage.reset_engines()
    for rec in storage.list_batches(url):
        assert storage.batch_files(rec.id, url)[0] == b"x" * 20_000_000


def test_overrides_show_in_results(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    batch_id = record(url, results=b"NAME,success_probability\nA,0.9\nB,0.2\n")
    storage.add_override(batch_id, 2, 1, "Known to us: strong local record", "ana", url)
    frame = storage.results_with_overrides(batch_id, url)
    assert frame.loc[1, "override_decision"] == "1" and frame.loc[1, "override_by"] == "ana"
    assert frame.loc[0, "override_decision"] == ""
    with pytest.raises(ValueError):
        storage.add_override(batch_id, 1, 1, "   ", "ana", url)
    with pytest.raises(KeyError):
        storage.add_override("no-such-batch", 1, 1, "x", "ana", url)
    assert storage.batch_files(batch_id, url)[0] == b"NAME,success_probability\nA,0.9\nB,0.2\n"


def test_twenty_concurrent_scorings_share_one_model(models_dir: Path, tmp_path: Path) -> None:
    url = db_url(tmp_path)
    bundle = bundle_of(models_dir, "tuned")
    data = sample_applicants(200, random_state=3).to_csv(index=False).encode()
    results: list[pd.DataFrame | None] = [None] * 20
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            result = score_frame(bundle, read_table(data))
            results[i] = result.scored
            record(url, results=to_csv_bytes(result.scored), user=f"user{i}", name=f"batch{i}.csv")
        except BaseException as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    first = results[0][PROBABILITY].to_numpy()
    for r in results[1:]:
        np.testing.assert_array_equal(r[PROBABILITY].to_numpy(), first)
    recs = storage.list_batches(url)
    assert len(recs) == 20 and {r.user for r in recs} == {f"user{i}" for i in range(20)}
    expected = to_csv_bytes(results[0])
    for rec in recs:
        assert storage.batch_files(rec.id, url)[0] == expected
