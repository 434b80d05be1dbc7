"""/readyz says ready only while the shared database (FLORA_DATABASE_URL) answers: a replica that lost it takes no
traffic, /healthz still says it is alive (no restart for a database outage)."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from flora_mcp.sandbox import Sandbox
from tests.hosted.hosted_support import hosted
from tests.store.pg_support import PostgresServer
from tests.support import settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_readiness_follows_the_database(sandbox: Sandbox, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    name = url.rsplit("/", 1)[1]
    async with hosted(settings_for(sandbox, database_url=SecretStr(url))) as server, \
            httpx.AsyncClient(timeout=10) as http:
        ready = await http.get(f"{server.url}/readyz")
        async with await psycopg.AsyncConnection.connect(postgres_server.url(), autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        lost = await http.get(f"{server.url}/readyz")
        alive = await http.get(f"{server.url}/healthz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert (lost.status_code, lost.json()) == (503, {"status": "database_unavailable"})
    assert alive.status_code == 200
