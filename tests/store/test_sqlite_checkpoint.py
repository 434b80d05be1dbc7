"""The SQLite journal's WAL is checkpointed by the store's own thread, never inside a commit callers wait on, and is
kept to its size under unbroken writes."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from flora_mcp.store import SQLiteStore
from flora_mcp.store._checkpoint import wal_full

pytestmark = pytest.mark.anyio

NEVER = 3600.0


async def record(store: SQLiteStore, key: str) -> None:
    await store.record(idempotency_key=key, account="acct", tool="cctv-cam", technique_id="tech_1",
                       technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={"prompt": "x" * 200},
                       run_cost=0.05)


def rows_in_database_file(path: Path, tmp_path: Path) -> int:
    """The runs in the database file alone, as a copy without its WAL reads it: what checkpoints put there (none
    before the first: even the tables are in the WAL until then). A copy taken during a checkpoint may be torn:
    -1."""
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(path, copy)
    db = sqlite3.connect(copy)
    try:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    except sqlite3.DatabaseError:
        return -1
    finally:
        db.close()


def wal_size(path: Path) -> int:
    return (path.parent / (path.name + "-wal")).stat().st_size


async def test_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SQLiteStore(str(path), checkpoint_every=NEVER)
    for index in range(300):  # past SQLite's own 1,000-page checkpoint, had it been left on
        await record(store, f"k{index}")
    assert store.checkpointer is not None and store.checkpointer.checkpoints == 0
    assert rows_in_database_file(path, tmp_path) == 0  # every row is still only in the WAL
    assert len(await store.recent("acct", limit=500)) == 300
    await store.aclose()
    assert not (tmp_path / "runs.sqlite3-wal").exists()  # the last connection to close checkpoints the rest
    assert rows_in_database_file(path, tmp_path) == 300


async def test_the_checkpointer_copies_written_pages_into_the_file_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SQLiteStore(str(path), checkpoint_every=0.01)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    for index in range(20):
        await record(store, f"k{index}")
    with anyio.fail_after(10):
        while rows_in_database_file(path, tmp_path) < 20:
            await anyio.sleep(0.01)
    made = checkpointer.checkpoints
    assert made >= 1
    await store.recent("acct")  # a read changes nothing: no checkpoint is due for it
    await anyio.sleep(0.1)
    assert checkpointer.checkpoints == made
    await store.aclose()


async def test_unbroken_writes_keep_the_wal_to_its_limit(tmp_path: Path) -> None:
    limit = 64 * 1024
    bounded, unbounded = tmp_path / "bounded" / "runs.sqlite3", tmp_path / "unbounded" / "runs.sqlite3"
    sizes = {}
    for path, wal_limit in ((bounded, limit), (unbounded, 1 << 40)):
        store = SQLiteStore(str(path), checkpoint_every=NEVER, wal_limit=wal_limit)
        largest = 0
        for index in range(1500):
            await record(store, f"k{index}")
            if index % 50 == 49:
                largest = max(largest, wal_size(path))
        sizes[path] = largest
        assert len(await store.recent("acct", limit=2000)) == 1500
        await store.aclose()
    # Checked every 64 batches, cut back to the limit when it starts over: a few MB at most, where unbounded it
    # holds every page of every write.
    assert sizes[bounded] < 3 * 1024 * 1024 and 2 * sizes[bounded] < sizes[unbounded], sizes


async def test_each_round_of_writes_gets_one_checkpoint(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "runs.sqlite3"), checkpoint_every=0.01)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    for round_ in range(1, 3):
        await record(store, f"k{round_}")
        with anyio.fail_after(10):
            while checkpointer.checkpoints < round_:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)  # nothing more was written: no other checkpoint comes
        assert checkpointer.checkpoints == round_
    await store.aclose()


def test_the_wal_is_full_only_past_its_limit_and_a_missing_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    assert not wal_full(path, 0)  # no WAL file at all
    (tmp_path / "runs.sqlite3-wal").write_bytes(b"x" * 100)
    assert not wal_full(path, 100)
    assert wal_full(path, 99)


def test_a_process_that_never_closes_its_store_still_exits(tmp_path: Path) -> None:
    """The writer's and the checkpointer's threads never hold a process that is ending (a crash path, a script)."""
    script = f"""
import asyncio
from flora_mcp.store import SQLiteStore
from flora_mcp.store._checkpoint import wal_full
store = SQLiteStore({str(tmp_path / "runs.sqlite3")!r}, checkpoint_every=3600)
asyncio.run(store.record(idempotency_key="k", account="a", tool="t", technique_id="t", technique_slug="t",
                         technique_name="T", inputs={{}}, run_cost=0.0))
print("written")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "written"
