"""FLORA's webhooks across replicas: each event recorded once in PostgreSQL, announced with NOTIFY, heard by every
replica's LISTEN connection, which wakes the calls waiting there.

With FLORA_DATABASE_URL the webhook may land on any replica and the call waiting for its run on any other. The
table `webhook_events` (store migration 2) records each event id once, for every replica at once: a delivery or a
replay seen by one is not acted on by another. The listener reconnects after losing its connection, and then wakes
every run announced since it was lost (from the same table); what it misses meanwhile, polling still finds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from flora_mcp.api.webhooks import TOLERANCE, WebhookEvent
from flora_mcp.core.completions import Completions

__all__ = ["CHANNEL", "LISTENER_NAME", "PostgresBus"]

log = logging.getLogger("flora_mcp.hosted.webhooks")

CHANNEL = "flora_mcp_run_announced"
RECONNECT_DELAY = 1.0
LISTENER_NAME = "flora-mcp webhook listener"
"""The listener's `application_name`, as pg_stat_activity shows it."""
KEEP = 2 * TOLERANCE
"""Seconds an event id is kept: a replay older than the signature tolerance is refused by its timestamp anyway."""


class PostgresBus:
    """The delivery log and the bus of `completions`, in the database every replica shares.

    Args:
        url: FLORA_DATABASE_URL.
        completions: this replica's waiting calls; its `log` and `publish` become this bus's.
    """

    def __init__(self, url: str, completions: Completions) -> None:
        self._url = url
        self.completions = completions
        completions.log = self
        completions.publish = self.publish
        self._pool: Any = None
        self.listening = anyio.Event()
        """Set once the LISTEN connection is up (again after each reconnect)."""
        self.reconnects = 0

    async def _connections(self) -> Any:
        if self._pool is None:
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(self._url, min_size=1, max_size=4, open=False, kwargs={"autocommit": True})
            await pool.open(wait=True, timeout=10)
            self._pool = pool
        return self._pool

    async def first_sight(self, event: WebhookEvent, *, now: float) -> bool:
        pool = await self._connections()
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM webhook_events WHERE received_at < %s", (now - KEEP,))
            cursor = await conn.execute(
                "INSERT INTO webhook_events (event_id, run_id, received_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id", (event.event_id, event.run_id, now))
            return await cursor.fetchone() is not None

    async def publish(self, run_id: str) -> None:
        pool = await self._connections()
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))

    async def listen(self) -> None:
        """Wake this replica's waiting calls for every announcement, from any replica; until cancelled."""
        from psycopg import AsyncConnection, Error

        since = time.time() - KEEP
        while True:
            try:
                async with await AsyncConnection.connect(self._url, autocommit=True,
                                                      application_name=LISTENER_NAME) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Announced while nobody here listened (at start, or while reconnecting): woken now.
                    cursor = await conn.execute("SELECT run_id FROM webhook_events WHERE received_at >= %s",
                                                (since,))
                    for (run_id,) in await cursor.fetchall():
                        self.completions.wake(str(run_id))
                    self.listening.set()
                    async for notice in conn.notifies():
                        self.completions.wake(notice.payload)
            except (Error, OSError) as exc:
                self.listening = anyio.Event()
                self.reconnects += 1
                since = time.time() - 1.0
                log.warning("webhook announcements: lost the database connection (%s); reconnecting",
                            " ".join(str(exc).split()) or type(exc).__name__)
                await anyio.sleep(RECONNECT_DELAY)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
