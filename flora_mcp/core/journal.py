"""The run journal: every run flora-mcp submits, recorded before the call can return, in SQLite.

A row is written, keyed by the call's idempotency key, before the create request is sent; it gets its run id as soon
as FLORA answers and its outputs and cost when the run ends. After a crash, a restart or a client that gave up, the run
is still found by id. Rows belong to an account (a hash of base URL and key): one key never sees another's rows.

`Journal` is the storage; the run lifecycle writes it only through `JournalWriter`, one method per event.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from flora_mcp.api.errors import APIError
from flora_mcp.api.models import Run, RunStatus, Technique

__all__ = ["JOURNAL_STATUSES", "Journal", "JournalEntry", "JournalStatus", "JournalWriter"]

JournalStatus = Literal[RunStatus, "unknown", "error", "submitting"]
"""A row's status: FLORA's run status once there is a run; before, `submitting` (the create is about to leave),
`unknown` (it left and may have made a run) or `error` (FLORA refused it)."""
JOURNAL_STATUSES: tuple[JournalStatus, ...] = get_args(JournalStatus)

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


class Journal:
    """A SQLite run journal (`:memory:` for one that lives as long as the process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path if path == ":memory:" else str(Path(path).expanduser()),
                                   check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._locked() as db:
            if path != ":memory:":
                # WAL with synchronous=NORMAL: a commit survives the process dying (the crash the journal is for)
                # without an fsync per write, which at 100 calls in flight cost ~150 ms per call on the event loop.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def close(self) -> None:
        """Close the database."""
        with self._locked() as db:
            db.close()

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
        with self._locked() as db:
            db.execute(
                "INSERT INTO runs (idempotency_key, account, tool, technique_id, technique_slug, technique_name, "
                "status, inputs, run_cost, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (idempotency_key, account, tool, technique_id, technique_slug, technique_name, status,
                 json.dumps(dict(inputs)), run_cost, now, now),
            )

    def update(self, idempotency_key: str, **fields: Any) -> None:
        """Set some of run_id, status, progress, outputs, charged_cost, poll_url, error_code, error_message."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not journal fields: {sorted(unknown)}")
        if "outputs" in fields:
            fields["outputs"] = json.dumps(fields["outputs"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._locked() as db:
            db.execute(f"UPDATE runs SET {assignments}, updated_at = ? WHERE idempotency_key = ?",
                       (*fields.values(), time.time(), idempotency_key))

    def get(self, account: str, run_id: str) -> JournalEntry | None:
        """The latest entry of one account's run, or None."""
        with self._locked() as db:
            row = db.execute("SELECT * FROM runs WHERE account = ? AND run_id = ? ORDER BY created_at DESC LIMIT 1",
                             (account, run_id)).fetchone()
        return _entry(row) if row else None

    def get_by_key(self, idempotency_key: str) -> JournalEntry | None:
        """The entry recorded under an idempotency key, or None."""
        with self._locked() as db:
            row = db.execute("SELECT * FROM runs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
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
        with self._locked() as db:
            rows = db.execute(query, params).fetchall()
        return [_entry(row) for row in rows]

    def spend(self, account: str) -> list[dict[str, Any]]:
        """Charged cost and run count per technique, largest spend first."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT technique_name, technique_slug, technique_id, COUNT(*) AS runs, "
                "COALESCE(SUM(charged_cost), 0) AS charged FROM runs WHERE account = ? AND run_id IS NOT NULL "
                "GROUP BY technique_id ORDER BY charged DESC, technique_name", (account,)).fetchall()
        return [dict(row) for row in rows]

    def count(self, account: str | None = None) -> int:
        """How many entries the journal holds, for one account or for all."""
        with self._locked() as db:
            if account is None:
                return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
            return int(db.execute("SELECT COUNT(*) FROM runs WHERE account = ?", (account,)).fetchone()[0])


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
