"""MCP tasks on disk: one row per task, in its own table of the run journal's SQLite file, so that a restarted server
answers `tasks/get` for the tasks it created.

The interface is narrow on purpose: `open`, `save`, `load`, `close`. It keeps what a task's answers need (status,
message, times, the FLORA run ids to follow again, the result once there is one), never the call's arguments. Its own
connection and table leave the run journal (core/journal.py) alone. When the file cannot be opened or written, tasks
are kept in memory only, and the log says so once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["StoredTask", "TaskJournal"]

log = logging.getLogger("flora_mcp.server.tasks")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mcp_tasks (
    task_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    shape TEXT NOT NULL,
    tool TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ttl_ms INTEGER NOT NULL,
    poll_ms INTEGER NOT NULL,
    run_ids TEXT NOT NULL,
    result TEXT,
    expires_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class StoredTask:
    """What the journal keeps of one task."""

    task_id: str
    account: str
    shape: str
    tool: str
    status: str
    message: str
    created_at: str
    updated_at: str
    ttl_ms: int
    poll_ms: int
    run_ids: list[str]
    result: dict[str, Any] | None


class TaskJournal:
    """The `mcp_tasks` table of one SQLite file."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def open(cls, path: str) -> TaskJournal | None:
        """The task table of the journal at `path` (made if missing), or None when it cannot be used."""
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
            db.execute(_SCHEMA)
            db.execute("DELETE FROM mcp_tasks WHERE expires_at < ?", (time.time(),))
        except sqlite3.Error as exc:
            log.warning("MCP tasks are kept in memory only: cannot use the journal %s: %s", path, exc)
            return None
        return cls(db)

    def save(self, task: StoredTask) -> None:
        """Write the task's current state; a failure is logged (once) and the task lives on in memory."""
        ttl = task.ttl_ms / 1000
        row = (task.task_id, task.account, task.shape, task.tool, task.status, task.message, task.created_at,
               task.updated_at, task.ttl_ms, task.poll_ms, json.dumps(task.run_ids),
               None if task.result is None else json.dumps(task.result), time.time() + max(ttl, 3600.0))
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO mcp_tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        except sqlite3.Error as exc:
            if not self._failed:
                log.warning("cannot write MCP task %s to the journal (kept in memory): %s", task.task_id, exc)
            self._failed = True

    def load(self, account: str, task_id: str) -> StoredTask | None:
        """The task, if this account made it and it has not expired."""
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT task_id, account, shape, tool, status, message, created_at, updated_at, ttl_ms, poll_ms, "
                    "run_ids, result FROM mcp_tasks WHERE task_id = ? AND account = ? AND expires_at >= ?",
                    (task_id, account, time.time())).fetchone()
        except sqlite3.Error as exc:
            log.warning("cannot read MCP task %s from the journal: %s", task_id, exc)
            return None
        if row is None:
            return None
        (task_id, account, shape, tool, status, message, created_at, updated_at, ttl_ms, poll_ms, run_ids,
         result) = row
        return StoredTask(task_id=task_id, account=account, shape=shape, tool=tool, status=status, message=message,
                          created_at=created_at, updated_at=updated_at, ttl_ms=ttl_ms, poll_ms=poll_ms,
                          run_ids=json.loads(run_ids), result=json.loads(result) if result else None)

    def close(self) -> None:
        with self._lock:
            self._db.close()
