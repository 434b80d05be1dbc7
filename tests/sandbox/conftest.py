"""Fixtures for the sandbox's contract tests: running sandboxes on loopback and an httpx helper around them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sandbox_support import Api, client_for

from flora_mcp.sandbox import Sandbox, SandboxConfig, serve_sandbox


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope lets a module share one sandbox where tests do not change its state.
    return "asyncio"


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    """A fresh sandbox with the control routes on, for tests that change state."""
    async with serve_sandbox(SandboxConfig(enable_control=True)) as sandbox:
        yield sandbox


@pytest.fixture
async def api(box: Sandbox) -> AsyncIterator[Api]:
    async with client_for(box) as client:
        yield Api(box, client)


@pytest.fixture(scope="module")
async def shared_box() -> AsyncIterator[Sandbox]:
    """One sandbox per module, for tests that only read or create independent runs."""
    async with serve_sandbox(SandboxConfig()) as sandbox:
        yield sandbox


@pytest.fixture
async def shared_api(shared_box: Sandbox) -> AsyncIterator[Api]:
    async with client_for(shared_box) as client:
        yield Api(shared_box, client)
