"""The embedded engine: one SQLite file (or `:memory:`), written by one thread of its own, never on the event loop.

Every operation is queued to the writer thread, which owns the connection: it takes what has queued up, runs it as
one transaction (each operation in a savepoint of its own, so one failing leaves the others), commits, and only then
answers the callers. Operations are applied in the order they were asked for, and a caller awaits its answer, so a
write is durable before the call goes on and a read sees every write asked for before it. A file's WAL is
checkpointed by a thread of its own (`_checkpoint.py`), never inside a commit that callers wait on.

The file holds inputs and output URLs: it is created 0600, in a 0700 folder when flora-mcp makes the folder. A file
that cannot be opened (not a database, read-only, a folder) raises `JournalError`, one line naming the file and the
fix. A file whose writes start failing (a full disk) never fails a call: the store goes on in memory, with every row
it could still read, after one warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from flora_mcp.store._checkpoint import CHECKPOINT_EVERY, WAL_LIMIT, Checkpointer, wal_full
from flora_mcp.store.base import Step, Store
from flora_mcp.store.records import MEMORY, JournalError
from flora_mcp.store.schema import SQLITE

__all__ = ["FILE_MODE", "FOLDER_MODE", "SQLiteStore"]

log = logging.getLogger("flora_mcp.store")

FILE_MODE = 0o600
FOLDER_MODE = 0o700
MAX_BATCH = 256
"""Operations committed together at most: enough to take a burst of calls in one commit."""
WAL_CHECK_EVERY = 64
"""Batches with changes between two looks at the WAL's size (a stat gives up the GIL, which a busy loop keeps)."""
_TABLES = ("runs", "mcp_tasks", "uploaded_assets", "budget_holds", "budget_sessions")

Rows = list[list[tuple[Any, ...]]]


@dataclass
class _Job:
    steps: Sequence[Step]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Rows] = field(repr=False)


class SQLiteStore(Store):
    """The store in one SQLite file (`:memory:` for one that lives as long as the process).

    Raises:
        JournalError: the file cannot be opened as a journal.
    """

    def __init__(self, path: str, *, checkpoint_every: float = CHECKPOINT_EVERY, wal_limit: int = WAL_LIMIT) -> None:
        self.location = path
        self._in_memory = path == MEMORY
        self._path = Path(path).expanduser()
        self._wal_limit = wal_limit
        self._db = _connect_memory() if self._in_memory else _connect_file(self._path, wal_limit)
        self.checkpointer: Checkpointer | None = None
        if not self._in_memory:
            try:
                self.checkpointer = Checkpointer(self._path, every=checkpoint_every)
            except (sqlite3.Error, OSError) as exc:
                self._db.close()
                raise JournalError(_cannot_open(self._path, exc)) from None
        self._written_batches = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="flora-mcp-store", daemon=True)
        self._thread.start()

    @property
    def in_memory(self) -> bool:
        return self._in_memory

    async def _transact(self, steps: Sequence[Step]) -> Rows:
        if self._closed:
            raise RuntimeError(f"the store {self.location} is closed")
        loop = asyncio.get_running_loop()
        job = _Job(steps, loop, loop.create_future())
        self._jobs.put(job)
        return await job.future

    def close(self) -> None:
        """Finish every queued operation and close the file (from code that is not async)."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        await anyio.to_thread.run_sync(self._thread.join)

    # The writer thread -------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._run(batch)
        self._stop_checkpointer()
        try:
            self._db.close()
        except (sqlite3.Error, OSError) as exc:
            log.warning("closing the run journal %s: %s", self.location, exc)

    def _run(self, batch: list[_Job]) -> None:
        try:
            outcomes = self._apply(batch)
        except (sqlite3.Error, OSError) as exc:
            if self._in_memory or not _storage_failure(exc):
                outcomes = [exc] * len(batch)
            else:
                self._fall_back_to_memory(exc)
                try:
                    outcomes = self._apply(batch)
                except (sqlite3.Error, OSError) as again:
                    outcomes = [again] * len(batch)
        # One wake-up per waiting loop, not one per operation: each is a trip through a loop that may be busy.
        answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Rows], Rows | BaseException]]] = {}
        for job, outcome in zip(batch, outcomes, strict=True):
            answers.setdefault(job.loop, []).append((job.future, outcome))
        for loop, settled in answers.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # the caller's loop is gone: nobody is waiting
                pass

    def _apply(self, batch: list[_Job]) -> list[Rows | BaseException]:
        """The batch in one transaction; a storage failure anywhere undoes all of it and is raised.

        Each operation runs in a savepoint of its own when others share the transaction; one alone needs none (its
        failure rolls back the transaction, which was all its own). Each statement lets go of the GIL around its SQLite
        calls and must take it back from a busy event loop: the fewer statements, the sooner callers hear."""
        db = self._db
        changes = db.total_changes
        db.execute("BEGIN IMMEDIATE")  # the write lock first: a budget check is atomic across processes too
        outcomes: list[Rows | BaseException] = []
        alone = len(batch) == 1
        try:
            for job in batch:
                if not alone:
                    db.execute("SAVEPOINT op")
                try:
                    rows: Rows = []
                    for step in job.steps:
                        cursor = db.execute(step.sql, tuple(step.params))
                        rows.append(cursor.fetchall() if step.rows else [])
                except (sqlite3.Error, OSError) as exc:
                    if _storage_failure(exc):
                        raise
                    db.execute("ROLLBACK" if alone else "ROLLBACK TO op")
                    outcomes.append(exc)
                    if alone:
                        return outcomes
                else:
                    outcomes.append(rows)
                if not alone:
                    db.execute("RELEASE op")
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except (sqlite3.Error, OSError):
                pass
            raise
        if db.total_changes != changes:
            self._committed()
        return outcomes

    def _committed(self) -> None:
        """Changes were committed: the checkpointer is told, and a WAL grown past its limit is checkpointed now."""
        if self.checkpointer is None:
            return
        self.checkpointer.written()
        self._written_batches += 1
        if self._written_batches % WAL_CHECK_EVERY == 0 and wal_full(self._path, self._wal_limit):
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except (sqlite3.Error, OSError) as exc:  # the batch is committed: its callers are answered all the same
                log.debug("checkpointing the run journal %s: %s", self.location, exc)

    def _stop_checkpointer(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None

    def _fall_back_to_memory(self, exc: BaseException) -> None:
        self._stop_checkpointer()
        memory = _connect_memory()
        count = 0
        for table in _TABLES:
            try:
                cursor = self._db.execute(f"SELECT * FROM {table} ORDER BY rowid")
                rows = cursor.fetchall()
                names = [d[0] for d in cursor.description]
            except (sqlite3.Error, OSError):
                continue
            memory.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                               rows)
            count += len(rows) if table == "runs" else 0
        try:
            self._db.close()
        except (sqlite3.Error, OSError):
            pass
        self._db, self._in_memory = memory, True
        log.warning("cannot write the run journal %s (%s): keeping runs in memory from now on, with the %d rows it "
                    "had; they are lost when flora-mcp stops. Free space or fix the file, then restart.",
                    self.location, exc, count)


def _settle_all(settled: list[tuple[asyncio.Future[Rows], Rows | BaseException]]) -> None:
    for future, outcome in settled:
        if future.cancelled():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file's tables to the latest version (each migration once, in one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = int(row[0] or 0)
        for version, statements in enumerate(SQLITE, start=1):
            if version <= current:
                continue
            for statement in statements:
                _migrate_step(db, statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _migrate_step(db: sqlite3.Connection, statement: str) -> None:
    try:
        db.execute(statement)
    except sqlite3.OperationalError as exc:
        # A file written by a flora-mcp that had the column without recording the version: already there.
        if "duplicate column" not in str(exc):
            raise


def _connect_memory() -> sqlite3.Connection:
    db = sqlite3.connect(MEMORY, check_same_thread=False, isolation_level=None)
    migrate(db)
    return db


def _connect_file(path: Path, wal_limit: int = WAL_LIMIT) -> sqlite3.Connection:
    """The journal file, made private and opened; JournalError with one line when it cannot be."""
    try:
        _make_private(path)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
    except (sqlite3.Error, OSError) as exc:
        raise JournalError(_cannot_open(path, exc)) from None
    try:
        # WAL with synchronous=NORMAL: a commit survives the process dying (the crash the journal is for) without
        # an fsync per write. SQLite gives the -wal and -shm files the mode of the database file.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's thread does it (_checkpoint.py)
        db.execute(f"PRAGMA journal_size_limit={int(wal_limit)}")
        migrate(db)
    except (sqlite3.Error, OSError) as exc:
        db.close()
        raise JournalError(_cannot_open(path, exc)) from None
    return db


def _make_private(path: Path) -> None:
    """Create the folder 0700 (when it is missing) and the file 0600; an existing file of ours is made 0600."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=FOLDER_MODE)
    if path.is_dir():
        raise IsADirectoryError(21, "it is a folder", str(path))
    fd = os.open(path, os.O_CREAT | os.O_RDONLY, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077 and os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    # SQLite opens a read-only file without a word and fails at the first write: that would be a paid run's.
    for where in (path, path.parent):
        if not os.access(where, os.W_OK):
            raise PermissionError(13, f"{'the file' if where == path else 'its folder'} is read-only", str(where))


def _cannot_open(path: Path, exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = reason.lower()
    if "not a database" in text or "malformed" in text:
        fix = "it is not a journal or it is damaged: move it aside"
    elif "readonly" in text or "read-only" in text or "permission" in text:
        fix = "flora-mcp may not write it: make it writable"
    else:
        fix = "check that its folder exists and can be written"
    return (f"cannot open the run journal {path}: {reason}; {fix}, or set FLORA_JOURNAL to another file "
            f"({MEMORY} keeps runs only while flora-mcp runs)")


def _storage_failure(exc: BaseException) -> bool:
    """Whether the file failed us (full, unwritable, damaged), rather than flora-mcp misusing it."""
    if isinstance(exc, OSError):
        return True
    return type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError)
