"""The shared engine: PostgreSQL through psycopg 3's async pool, for any number of flora-mcp replicas.

`FLORA_DATABASE_URL=postgresql://...` selects it. At start (`open`) the schema is created or migrated under an
advisory lock, so replicas starting together apply each migration once. Each operation is one transaction on a
pooled connection; a budget check takes a per-account advisory lock first, so the check and its reservation are one
step for every replica at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flora_mcp.store.base import Step, Store
from flora_mcp.store.records import JournalError
from flora_mcp.store.schema import POSTGRES

__all__ = ["MIGRATION_LOCK", "PostgresStore", "public_url"]

log = logging.getLogger("flora_mcp.store")

MIGRATION_LOCK = 0x_F10_A_3C_9
"""The advisory lock key replicas take while they create or migrate the schema."""
POOL_MAX = 10
CONNECT_TIMEOUT = 10.0


def public_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[2]}"))


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(Store):
    """The store in a PostgreSQL database that every replica shares."""

    shared = True

    def __init__(self, url: str) -> None:
        self._url = url
        self.location = public_url(url)
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Connect and bring the schema to the latest version.

        Raises:
            JournalError: the database cannot be reached or migrated; one line naming it.
        """
        async with self._opening:
            if self._pool is not None:
                return
            from psycopg import Error
            from psycopg_pool import AsyncConnectionPool, PoolTimeout

            # Each connection is checked as it is taken: after a restart or a failover every pooled one is dead, and
            # the first operation on each must not fail for it (a paid run's row among them).
            pool = AsyncConnectionPool(self._url, min_size=1, max_size=POOL_MAX, open=False,
                                       kwargs={"autocommit": True}, check=AsyncConnectionPool.check_connection)
            try:
                await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
                await self._migrate(pool)
            except (Error, PoolTimeout, OSError) as exc:
                await pool.close()
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise JournalError(f"cannot open the database {self.location}: {reason}; check FLORA_DATABASE_URL "
                                   "and that PostgreSQL is up and reachable") from None
            self._pool = pool

    async def _migrate(self, pool: Any) -> None:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cursor = await conn.execute("SELECT MAX(version) FROM schema_version")
            row = await cursor.fetchone()
            current = int(row[0] or 0) if row else 0
            for version, statements in enumerate(POSTGRES, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                log.info("database %s: schema version %d applied", self.location, version)

    def _lock_account(self, account: str) -> Step | None:
        return Step("SELECT pg_advisory_xact_lock(hashtext(?))", (account,))

    async def _transact(self, steps: Sequence[Step]) -> list[list[tuple[Any, ...]]]:
        if self._pool is None:
            await self.open()
        results: list[list[tuple[Any, ...]]] = []
        async with self._pool.connection() as conn, conn.transaction():
            for step in steps:
                cursor = await conn.execute(_pg(step.sql), tuple(step.params))
                results.append(list(await cursor.fetchall()) if step.rows else [])
        return results

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
