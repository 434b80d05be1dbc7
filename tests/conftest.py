"""The fixtures every test folder uses: the anyio backend, a sandbox for the test key, a toolkit on it.

Helpers (the key, settings, MCP clients, environments, request-log readers) are in tests/support.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.store.pg_support import postgres_server, postgres_url, store_location
from tests.support import sandbox_config, settings_for

__all__ = ["postgres_server", "postgres_url", "store_location"]  # fixtures for every folder (tests/store/pg_support.py)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config()) as box:
        yield box


@pytest.fixture
async def toolkit(sandbox: Sandbox) -> AsyncIterator[Toolkit]:
    async with Toolkit(settings_for(sandbox)) as kit:
        yield kit
