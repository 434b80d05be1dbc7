"""`--sandbox`: the settings pointed at an embedded FLORA sandbox on loopback, for as long as a command runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from flora_mcp.config import Settings

__all__ = ["settings_with_sandbox"]

log = logging.getLogger("flora_mcp")


@asynccontextmanager
async def settings_with_sandbox(settings: Settings, sandbox: bool) -> AsyncIterator[Settings]:
    """The settings as given, or pointed at an embedded sandbox that lives as long as the context."""
    if not sandbox:
        yield settings
        return
    from flora_mcp.sandbox import SandboxConfig, serve_sandbox

    async with serve_sandbox(SandboxConfig()) as box:
        log.info("embedded FLORA sandbox at %s", box.base_url)
        yield settings.model_copy(update={"base_url": box.base_url, "api_key": SecretStr(box.api_key)})
