"""Every test here is a slow multi-process one (`-m "not replicas"` leaves them out; CI runs them): replicas,
nginx, the sandbox they share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import sandbox_config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.replicas)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    """The FLORA every replica talks to: runs take a moment, so a call is waiting when something happens to it."""
    async with serve_sandbox(sandbox_config(run_delay=0.5, webhook_retry_delay=0.05)) as sandbox:
        yield sandbox
