"""Checkpoints of the SQLite journal's write-ahead log, kept off the writer's commits.

SQLite's own policy checkpoints inside the commit that takes the WAL past 1,000 pages: that commit copies the pages
into the database file and fsyncs both files, and every call queued behind it waits (at 100 calls in flight, the
p99 of a call went from 5 to 15-25 ms on these machines). So the writer's connection turns that off and this thread,
on a connection of its own, checkpoints at most once a `CHECKPOINT_EVERY` while the journal is written. A PASSIVE
checkpoint never blocks the writer, so commits keep going during its fsyncs.

A passive checkpoint only finishes (and lets the WAL start again from the top) when no commit came in during it;
under unbroken load the WAL would grow for as long as the load lasts. `wal_full` is the writer's bound: past
`WAL_LIMIT` bytes the writer checkpoints itself, between two batches, once, and the file starts over.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["CHECKPOINT_EVERY", "WAL_LIMIT", "Checkpointer", "wal_full"]

log = logging.getLogger("flora_mcp.store")

CHECKPOINT_EVERY = 1.0
"""Seconds between two checkpoints while the journal is written: a second of commits copied in one go."""
WAL_LIMIT = 16 * 1024 * 1024
"""Bytes the WAL may reach before the writer checkpoints itself; also what it is cut back to when it starts over."""


class Checkpointer:
    """Copies committed pages from the WAL into the database file, on its own thread and connection."""

    def __init__(self, path: Path, *, every: float = CHECKPOINT_EVERY) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
        self._every = every
        self._written = threading.Event()
        self._stopping = threading.Event()
        self.checkpoints = 0
        """Checkpoints made so far (for tests)."""
        self._thread = threading.Thread(target=self._serve, name="flora-mcp-checkpoint", daemon=True)
        self._thread.start()

    def written(self) -> None:
        """The writer committed changes: a checkpoint is due within `every` seconds."""
        self._written.set()

    def close(self) -> None:
        """Stop and close the connection; what is left in the WAL is checkpointed when the writer closes last."""
        self._stopping.set()
        self._written.set()
        self._thread.join()

    def _serve(self) -> None:
        while True:
            self._written.wait()
            if self._stopping.wait(self._every):
                break
            self._written.clear()
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except (sqlite3.Error, OSError) as exc:  # the writer meets a failing file itself and says so
                log.debug("checkpointing the run journal: %s", exc)
            self.checkpoints += 1
        try:
            self._db.close()
        except (sqlite3.Error, OSError):
            pass


def wal_full(path: Path, limit: int = WAL_LIMIT) -> bool:
    """Whether the database's WAL file has grown past `limit` bytes."""
    try:
        return (path.parent / (path.name + "-wal")).stat().st_size > limit
    except OSError:
        return False
