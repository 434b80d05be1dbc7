"""Which bytes are already a FLORA asset: SHA-256 to asset, per account and workspace, in SQLite beside the journal.

The same file given again (in this session or a later one) is not uploaded again: its asset URL is reused. Rows
belong to an account (a hash of base URL and key, as the journal's) and a workspace; one never sees another's.
The table lives in the journal's database file, in a table of its own, so `:memory:` keeps none here either.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AssetMemo", "RememberedAsset"]

log = logging.getLogger("flora_mcp.core.asset_memo")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploaded_assets (
    account TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    url TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (account, workspace_id, sha256)
);
"""


@dataclass(frozen=True)
class RememberedAsset:
    asset_id: str
    url: str
    size_bytes: int
    content_type: str


class AssetMemo:
    """SHA-256 -> uploaded asset, per account and workspace."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        try:
            self._db = self._open(path)
        except (OSError, sqlite3.Error) as exc:
            # Remembering uploads saves time, never correctness: without the file, files are uploaded again.
            log.warning("upload memo %s cannot be used (%s); remembering uploads in memory only", path, exc)
            self._db = self._open(":memory:")

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        memory = path == ":memory:"
        if not memory:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path if memory else str(Path(path).expanduser()), check_same_thread=False,
                             isolation_level=None, timeout=10.0)
        if not memory:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def get(self, account: str, workspace_id: str, sha256: str) -> RememberedAsset | None:
        with self._lock:
            row = self._db.execute(
                "SELECT asset_id, url, size_bytes, content_type FROM uploaded_assets "
                "WHERE account = ? AND workspace_id = ? AND sha256 = ?", (account, workspace_id, sha256)).fetchone()
        return RememberedAsset(*row) if row else None

    def put(self, account: str, workspace_id: str, sha256: str, asset: RememberedAsset) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO uploaded_assets VALUES (?,?,?,?,?,?,?,?)",
                (account, workspace_id, sha256, asset.asset_id, asset.url, asset.size_bytes, asset.content_type,
                 time.time()))

    def forget(self, account: str, workspace_id: str, sha256: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM uploaded_assets WHERE account = ? AND workspace_id = ? AND sha256 = ?",
                             (account, workspace_id, sha256))

    def close(self) -> None:
        with self._lock:
            self._db.close()
