"""PostgresBus: two replicas' buses on one database take each webhook event once between them, and an announcement
made by one wakes the calls waiting on the other, also after the listener lost its connection."""

from __future__ import annotations

import time

import anyio
import psycopg
import pytest

from flora_mcp.api.webhooks import WebhookEvent
from flora_mcp.core.completions import Completions
from flora_mcp.hosted._bus import LISTENER_NAME, PostgresBus
from flora_mcp.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

EVENT = WebhookEvent(event_id="evt_1", type="run.completed", run_id="run_1", status="completed")


async def migrated(url: str) -> None:
    store = open_store(url)
    await store.open()  # the schema, webhook_events included (migration 2)
    await store.aclose()


async def test_an_event_is_taken_once_whichever_replica_it_reaches(postgres_url: str) -> None:
    await migrated(postgres_url)
    a, b = Completions("http://x/webhooks/flora"), Completions("http://x/webhooks/flora")
    bus_a, bus_b = PostgresBus(postgres_url, a), PostgresBus(postgres_url, b)
    try:
        assert await a.receive(EVENT, now=1000.0) is True
        assert await b.receive(EVENT, now=1001.0) is False  # the replay, at another replica
        assert (a.received, b.received, b.repeated) == (1, 0, 1)
        # Past twice the tolerance the id is forgotten (the signature's timestamp refuses such a replay anyway).
        other = WebhookEvent(event_id="evt_2", type="run.completed", run_id="run_2", status="completed")
        assert await b.receive(other, now=1000.0 + 601) is True
        assert await a.receive(EVENT, now=1000.0 + 602) is True
    finally:
        await bus_a.aclose()
        await bus_b.aclose()


async def test_an_announcement_on_one_replica_wakes_the_call_waiting_on_another(postgres_url: str) -> None:
    await migrated(postgres_url)
    here, there = Completions("http://x/webhooks/flora"), Completions("http://x/webhooks/flora")
    bus_here, bus_there = PostgresBus(postgres_url, here), PostgresBus(postgres_url, there)
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus_there.listen)
        with anyio.fail_after(10):
            await bus_there.listening.wait()
        with there.watch("run_1") as watch:
            assert not watch.fired
            assert await here.receive(EVENT, now=time.time())
            with anyio.fail_after(10):
                await watch.wait()
        assert here.wakes == 0 and there.wakes == 1  # published to the database, heard by the listener
        # The listener's connection is killed; it reconnects and wakes what was announced meanwhile.
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            cursor = await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE application_name = %s", (LISTENER_NAME,))
            assert len(await cursor.fetchall()) == 1
        with anyio.fail_after(15):
            while bus_there.reconnects == 0:
                await anyio.sleep(0.05)
        later = WebhookEvent(event_id="evt_3", type="run.completed", run_id="run_3", status="completed")
        assert await here.receive(later, now=time.time())
        with there.watch("run_3") as watch, anyio.fail_after(15):
            await watch.wait()
        tg.cancel_scope.cancel()
    await bus_here.aclose()
    await bus_there.aclose()
