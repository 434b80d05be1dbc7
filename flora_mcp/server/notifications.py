"""Telling clients when their tool list changed.

`ToolListNotifier` tells every client of a toolkit: `notifications/tools/list_changed` on handshake-era sessions (stdio
and stateful HTTP), and a `ToolsListChanged` event on the bus that feeds 2026-07-28 `subscriptions/listen` streams.
"""

from __future__ import annotations

import logging
import weakref
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.subscriptions import SubscriptionBus

__all__ = ["ToolListNotifier"]

log = logging.getLogger("flora_mcp.server.notifications")


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
