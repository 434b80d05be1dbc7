"""Keeping the catalog fresh while the server runs.

`CatalogRefresher` re-lists the techniques when the catalog served from the cache is due (`FLORA_CATALOG_TTL`) and every
`FLORA_CATALOG_REFRESH` seconds; a failed refresh keeps the catalog being served. When the tools changed it awaits
`on_change` (the server's `ToolListNotifier`, in `flora_mcp.server.notifications`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:

    from flora_mcp.core.toolkit import Toolkit

__all__ = ["CatalogRefresher"]

log = logging.getLogger("flora_mcp.core.refresh")


class CatalogRefresher:
    """Refreshes one toolkit's catalog in the background and reports changes to `on_change`.

    Args:
        toolkit: the toolkit whose catalog to keep fresh.
        on_change: awaited after a refresh that changed the tools (typically `ToolListNotifier.tools_changed`).
    """

    def __init__(self, toolkit: Toolkit, *, on_change: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.toolkit = toolkit
        self.on_change = on_change
        self._lock = anyio.Lock()

    def first_delay(self, cached_age: float | None) -> float | None:
        """Seconds until the first refresh: when a cached catalog expires, or after one refresh interval.

        Args:
            cached_age: the age of the catalog served from the cache; None when it came from FLORA just now.
        """
        settings = self.toolkit.settings
        candidates = []
        if cached_age is not None:
            candidates.append(max(settings.catalog_ttl - cached_age, 0.0))
        if settings.catalog_refresh > 0:
            candidates.append(settings.catalog_refresh)
        return min(candidates) if candidates else None

    async def refresh(self) -> bool:
        """Re-list the techniques now; True when the tools changed (and `on_change` was awaited)."""
        async with self._lock:
            try:
                changed = await self.toolkit.refresh_catalog()
            except Exception as exc:
                log.warning("catalog refresh failed; still serving the previous catalog: %s",
                            getattr(exc, "message", None) or repr(exc))
                return False
        if changed:
            log.info("the technique catalog changed: %d techniques", len(self.toolkit.catalog))
            if self.on_change is not None:
                await self.on_change()
        return changed

    async def run(self, first_delay: float | None) -> None:
        """Refresh after `first_delay` seconds (never when None), then every FLORA_CATALOG_REFRESH seconds."""
        delay = first_delay
        interval = self.toolkit.settings.catalog_refresh
        while delay is not None:
            await anyio.sleep(delay)
            await self.refresh()
            delay = interval if interval > 0 else None
