"""Where flora-mcp keeps what outlives a call: the run journal, spend and budget reservations, MCP task state and
remembered uploads, behind one async interface (`Store`, see README.md).

`open_store(location)`: a PostgreSQL URL (`FLORA_DATABASE_URL`) gives the shared engine, anything else is a SQLite
file (or `:memory:`), the embedded default.
"""

from __future__ import annotations

from flora_mcp.store.base import Store
from flora_mcp.store.records import (
    JOURNAL_STATUSES,
    MEMORY,
    Admission,
    JournalEntry,
    JournalError,
    JournalStatus,
    RememberedAsset,
    StoredTask,
)
from flora_mcp.store.sqlite import SQLiteStore

__all__ = ["JOURNAL_STATUSES", "MEMORY", "Admission", "JournalEntry", "JournalError", "JournalStatus",
           "RememberedAsset", "SQLiteStore", "Store", "StoredTask", "is_database_url", "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(location: str) -> bool:
    """Whether `location` names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(_POSTGRES_SCHEMES)


def open_store(location: str) -> Store:
    """The store at `location`: a PostgreSQL URL, or a SQLite file path (`:memory:` for none).

    Raises:
        JournalError: the SQLite file cannot be opened (a PostgreSQL database is reached by `Store.open`).
    """
    if is_database_url(location):
        from flora_mcp.store.postgres import PostgresStore  # psycopg is imported only by those who use it

        return PostgresStore(location)
    return SQLiteStore(location)
