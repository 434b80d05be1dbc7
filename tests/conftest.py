from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


from collections.abc import AsyncIterator  # noqa: E402
from typing import Any  # noqa: E402

from flora_mcp.config import Settings  # noqa: E402
from flora_mcp.core.toolkit import Toolkit  # noqa: E402
from flora_mcp.sandbox import Account, Sandbox, SandboxConfig, serve_sandbox  # noqa: E402

# Every test talks to the sandbox with this key; .ci/run checks that it never appears in the suite's output.
TEST_KEY = "sk_live_TEST0secret0key0never0logged"


def sandbox_config(**overrides: Any) -> SandboxConfig:
    """A sandbox for the test key whose runs are not announced as slower than they are (clients poll at once)."""
    overrides.setdefault("keys", {TEST_KEY: Account()})
    overrides.setdefault("estimate_scale", 0.0)
    return SandboxConfig(**overrides)


def settings_for(box: Sandbox, **overrides: Any) -> Settings:
    """Settings pointed at a sandbox, fast to poll, journal in memory."""
    values: dict[str, Any] = {"api_key": TEST_KEY, "base_url": box.base_url, "journal": ":memory:",
                              "poll_interval": 0.05, "max_wait": 20.0, "tools_mode": "full",
                              "catalog_cache": "off"}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config()) as box:
        yield box


@pytest.fixture
async def toolkit(sandbox: Sandbox) -> AsyncIterator[Toolkit]:
    async with Toolkit(settings_for(sandbox)) as kit:
        yield kit
