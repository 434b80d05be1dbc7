"""Keeping the catalog fresh while the server runs, and telling clients when their tool list changed.

`CatalogRefresher` re-lists the techniques when the catalog served from the cache is due (`FLORA_CATALOG_TTL`) and every
`FLORA_CATALOG_REFRESH` seconds; a failed refresh keeps the catalog being served. When the tools changed,
`ToolListNotifier` tells every client: `notifications/tools/list_changed` on handshake-era sessions (stdio and stateful
HTTP), and a `ToolsListChanged` event on the bus that feeds 2026-07-28 `subscriptions/listen` streams.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.subscriptions import SubscriptionBus

    from flora_mcp.toolkit import Toolkit

__all__ = ["CatalogRefresher", "ToolListNotifier"]

log = logging.getLogger("flora_mcp.refresh")


class ToolListNotifier:
    """Remembers which client connections use which toolkit, and tells them when its tools change.

    Args:
        bus: the subscription bus of the server's `ListenHandler`; an in-memory one by default.
    """

    def __init__(self, bus: SubscriptionBus | None = None) -> None:
        from mcp.server.subscriptions import InMemorySubscriptionBus

        self.bus: SubscriptionBus = bus or InMemorySubscriptionBus()
        # Weak on both sides: a toolkit or a connection that goes away takes its entry with it.
        self._targets: weakref.WeakKeyDictionary[object, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()

    def remember(self, ctx: ServerRequestContext[Any], toolkit: object) -> None:
        """Note that the client behind this request uses `toolkit` (only handshake-era clients need this)."""
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

        if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return  # 2026-07-28 clients listen on subscriptions/listen instead
        # SDK 2.3 gives a handler a per-request ServerSession; the connection behind it is the one to keep, as it
        # outlives the request. Without it (another SDK), the session still reaches the client while it lives.
        target = getattr(ctx.session, "_connection", None) or ctx.session
        targets = self._targets.get(toolkit)
        if targets is None:
            targets = self._targets[toolkit] = weakref.WeakSet()
        if target in targets:
            return
        targets.add(target)
        teardown = getattr(target, "exit_stack", None)
        if isinstance(teardown, AsyncExitStack):
            teardown.callback(targets.discard, target)  # forgotten as the connection closes, not at the next GC

    def sessions(self, toolkit: object) -> int:
        """How many live handshake-era connections use this toolkit."""
        targets = self._targets.get(toolkit)
        return len(targets) if targets is not None else 0

    async def tools_changed(self, toolkit: object | None = None) -> int:
        """Tell the clients of `toolkit` (of every toolkit when None) that the tool list changed.

        Returns:
            How many handshake-era connections were sent `notifications/tools/list_changed`.
        """
        from mcp.server.subscriptions import ToolsListChanged

        groups = list(self._targets.values()) if toolkit is None else [self._targets.get(toolkit) or weakref.WeakSet()]
        sent = 0
        for group in groups:
            for target in list(group):
                try:
                    await target.send_tool_list_changed()
                    sent += 1
                except Exception as exc:  # a client that left: forget it, tell the others
                    log.debug("cannot notify a client of the tool list change: %r", exc)
                    group.discard(target)
        await self.bus.publish(ToolsListChanged())
        return sent


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
