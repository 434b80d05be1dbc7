"""The run journal: every run flora-mcp submits, recorded before the call can return, in SQLite.

A row is written, keyed by the call's idempotency key, before the create request is sent; it gets its run id as soon
as FLORA answers and its outputs and cost when the run ends. After a crash, a restart or a client that gave up, the run
is still found by id. Rows belong to an account (a hash of base URL and key): one key never sees another's rows.

`Journal` is the storage; the run lifecycle writes it only through `JournalWriter`, one method per event.

The file holds inputs and output URLs: it is created 0600, in a 0700 folder when flora-mcp makes the folder. A file
that cannot be opened (not a database, read-only, a folder) raises `JournalError`, one line naming the file and the
fix. A journal whose writes start failing (a full disk) never fails a call: it goes on in memory, with every row it
could still read, after one warning. Every text written passes the log redaction: no key reaches the file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from flora_mcp.api.errors import APIError, FloraError
from flora_mcp.api.models import Run, RunStatus, Technique
from flora_mcp.logs import redact, redact_value

__all__ = ["JOURNAL_STATUSES", "Journal", "JournalEntry", "JournalError", "JournalStatus", "JournalWriter"]

log = logging.getLogger("flora_mcp.core.journal")

JournalStatus = Literal[RunStatus, "unknown", "error", "submitting"]
"""A row's status: FLORA's run status once there is a run; before, `submitting` (the create is about to leave),
`unknown` (it left and may have made a run) or `error` (FLORA refused it)."""
JOURNAL_STATUSES: tuple[JournalStatus, ...] = get_args(JournalStatus)

T = TypeVar("T")
MEMORY = ":memory:"
FILE_MODE = 0o600
FOLDER_MODE = 0o700

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    idempotency_key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    run_id TEXT,
    tool TEXT NOT NULL,
    technique_id TEXT NOT NULL,
    technique_slug TEXT,
    technique_name TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL DEFAULT '[]',
    charged_cost REAL,
    run_cost REAL,
    poll_url TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_id ON runs (account, run_id);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (account, created_at);
"""


@dataclass(frozen=True)
class JournalEntry:
    """One journal row."""

    idempotency_key: str
    account: str
    run_id: str | None
    tool: str
    technique_id: str
    technique_slug: str | None
    technique_name: str
    status: str
    progress: float | None
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]]
    charged_cost: float | None
    run_cost: float | None
    poll_url: str | None
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready fields, without the account hash."""
        return {k: v for k, v in self.__dict__.items() if k != "account"}


_UPDATABLE = frozenset({"run_id", "status", "progress", "outputs", "charged_cost", "poll_url", "error_code",
                        "error_message"})


class JournalError(FloraError):
    """The journal file cannot be opened; the message names the file and what to do."""

    code = "journal_error"


class Journal:
    """A SQLite run journal (`:memory:` for one that lives as long as the process).

    Raises:
        JournalError: the file cannot be opened as a journal.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.in_memory = path == MEMORY
        """Whether the rows live in memory only: asked for, or since the file could not be written."""
        self._lock = threading.Lock()
        self._db = _connect_memory() if self.in_memory else _connect_file(Path(path).expanduser())

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on the database, under the lock; on a file that fails, once more on the memory it falls back to."""
        with self._lock:
            try:
                return work(self._db)
            except (sqlite3.Error, OSError) as exc:
                if self.in_memory or not _storage_failure(exc):
                    raise
                self._fall_back_to_memory(exc)
            return work(self._db)

    def _fall_back_to_memory(self, exc: BaseException) -> None:
        memory = _connect_memory()
        try:
            rows = self._db.execute("SELECT * FROM runs").fetchall()
        except (sqlite3.Error, OSError):
            rows = []
        for row in rows:
            names = list(row.keys())
            memory.execute(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                           tuple(row))
        try:
            self._db.close()
        except (sqlite3.Error, OSError):
            pass
        self._db, self.in_memory = memory, True
        log.warning("cannot write the run journal %s (%s): keeping runs in memory from now on, with the %d rows it "
                    "had; they are lost when flora-mcp stops. Free space or fix the file, then restart.",
                    self.path, exc, len(rows))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            try:
                self._db.close()
            except (sqlite3.Error, OSError) as exc:
                log.warning("closing the run journal %s: %s", self.path, exc)

    def record(
        self,
        *,
        idempotency_key: str,
        account: str,
        tool: str,
        technique_id: str,
        technique_slug: str | None,
        technique_name: str,
        inputs: Mapping[str, Any],
        run_cost: float | None,
        status: JournalStatus = "submitting",
    ) -> None:
        """Write the row of a run about to be submitted."""
        now = time.time()
        values = (idempotency_key, account, redact(tool), technique_id, technique_slug, redact(technique_name), status,
                  json.dumps(redact_value(dict(inputs))), run_cost, now, now)
        self._run(lambda db: db.execute(
            "INSERT INTO runs (idempotency_key, account, tool, technique_id, technique_slug, technique_name, "
            "status, inputs, run_cost, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", values))

    def update(self, idempotency_key: str, **fields: Any) -> None:
        """Set some of run_id, status, progress, outputs, charged_cost, poll_url, error_code, error_message."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not journal fields: {sorted(unknown)}")
        fields = redact_value(fields)
        if "outputs" in fields:
            fields["outputs"] = json.dumps(fields["outputs"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = (*fields.values(), time.time(), idempotency_key)
        self._run(lambda db: db.execute(f"UPDATE runs SET {assignments}, updated_at = ? WHERE idempotency_key = ?",
                                        values))

    def get(self, account: str, run_id: str) -> JournalEntry | None:
        """The latest entry of one account's run, or None."""
        row = self._run(lambda db: db.execute(
            "SELECT * FROM runs WHERE account = ? AND run_id = ? ORDER BY created_at DESC LIMIT 1",
            (account, run_id)).fetchone())
        return _entry(row) if row else None

    def get_by_key(self, idempotency_key: str) -> JournalEntry | None:
        """The entry recorded under an idempotency key, or None."""
        row = self._run(lambda db: db.execute("SELECT * FROM runs WHERE idempotency_key = ?",
                                              (idempotency_key,)).fetchone())
        return _entry(row) if row else None

    def recent(self, account: str, *, limit: int = 20, status: str | None = None) -> list[JournalEntry]:
        """One account's latest entries, newest first, optionally only those in one status."""
        query = "SELECT * FROM runs WHERE account = ?"
        params: list[Any] = [account]
        if status:
            query += " AND status = ?"
            params.append(status)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(limit)
        rows = self._run(lambda db: db.execute(query, params).fetchall())
        return [_entry(row) for row in rows]

    def spend(self, account: str) -> list[dict[str, Any]]:
        """Charged cost and run count per technique, largest spend first."""
        rows = self._run(lambda db: db.execute(
            "SELECT technique_name, technique_slug, technique_id, COUNT(*) AS runs, "
            "COALESCE(SUM(charged_cost), 0) AS charged FROM runs WHERE account = ? AND run_id IS NOT NULL "
            "GROUP BY technique_id ORDER BY charged DESC, technique_name", (account,)).fetchall())
        return [dict(row) for row in rows]

    def charged_since(self, account: str, since: float) -> float:
        """What one account's runs created at or after `since` (epoch seconds) were charged in all."""
        return float(self._run(lambda db: db.execute(
            "SELECT COALESCE(SUM(charged_cost), 0) FROM runs WHERE account = ? AND created_at >= ?",
            (account, since)).fetchone()[0]))

    def count(self, account: str | None = None) -> int:
        """How many entries the journal holds, for one account or for all."""
        if account is None:
            return int(self._run(lambda db: db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]))
        return int(self._run(lambda db: db.execute("SELECT COUNT(*) FROM runs WHERE account = ?",
                                                   (account,)).fetchone()[0]))


class JournalWriter:
    """How the run lifecycle writes one account's journal: one method per event of a run, by idempotency key."""

    def __init__(self, journal: Journal, account: str) -> None:
        self.journal = journal
        self.account = account

    def submitting(self, key: str, tool: str, technique: Technique, inputs: Mapping[str, Any]) -> None:
        """The create request is about to leave: the row exists before FLORA can make a run."""
        self.journal.record(idempotency_key=key, account=self.account, tool=tool,
                            technique_id=technique.technique_id, technique_slug=technique.slug,
                            technique_name=technique.name, inputs=inputs, run_cost=technique.run_cost)

    def created(self, key: str, run: Run) -> None:
        """FLORA answered the create (or the run it made was recovered): the row gets its run id."""
        self.journal.update(key, run_id=run.run_id, status=run.status, poll_url=run.poll_url, progress=run.progress)

    def create_failed(self, key: str, exc: APIError, *, run_may_exist: bool) -> None:
        """The create gave no run: `unknown` when one may exist all the same, else `error`."""
        self.journal.update(key, status="unknown" if run_may_exist else "error", error_code=exc.code,
                            error_message=exc.message)

    def polled(self, key: str, run: Run) -> None:
        """A poll saw the run in a new, not final, status."""
        self.journal.update(key, status=run.status, progress=run.progress)

    def finished(self, key: str, run: Run) -> None:
        """The run ended: its outputs, or its error."""
        self.journal.update(key, status=run.status, progress=run.progress,
                            outputs=[o.model_dump() for o in run.outputs],
                            error_code=run.error_code, error_message=run.error_message)

    def charged(self, key: str, cost: float) -> None:
        """FLORA reported what the run cost."""
        self.journal.update(key, charged_cost=cost)

    def charged_before(self, key: str) -> float | None:
        """The cost already written for this run, if any (by this session or an earlier one)."""
        entry = self.journal.get_by_key(key)
        return entry.charged_cost if entry else None


def _entry(row: sqlite3.Row) -> JournalEntry:
    data = dict(row)
    data["inputs"] = json.loads(data["inputs"] or "{}")
    data["outputs"] = json.loads(data["outputs"] or "[]")
    return JournalEntry(**data)


def _connect_memory() -> sqlite3.Connection:
    db = sqlite3.connect(MEMORY, check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.executescript(_SCHEMA)
    return db


def _connect_file(path: Path) -> sqlite3.Connection:
    """The journal file, made private and opened; JournalError with one line when it cannot be."""
    try:
        _make_private(path)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
    except (sqlite3.Error, OSError) as exc:
        raise JournalError(_cannot_open(path, exc)) from None
    try:
        db.row_factory = sqlite3.Row
        # WAL with synchronous=NORMAL: a commit survives the process dying (the crash the journal is for) without
        # an fsync per write, which at 100 calls in flight cost ~150 ms per call on the event loop. SQLite gives the
        # -wal and -shm files the mode of the database file.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
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
