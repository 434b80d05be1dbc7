"""Serving the MCP server over stdio for local clients (hosted mode, HTTP and SSE, is flora_mcp.hosted)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from flora_mcp.config import Settings

if TYPE_CHECKING:
    from flora_mcp.core.catalog_process import CatalogProcess

__all__ = ["serve_stdio"]

log = logging.getLogger("flora_mcp")

# After the SDK is imported, the first answers (initialize, tools/list) go out before hundreds of schema requests
# compete with them for the event loop; a tool call that needs the schemas starts them at once.
SCHEMAS_GRACE = 1.0


async def serve_stdio(settings: Settings, child: CatalogProcess | None = None) -> None:
    """Answer `initialize` at once and load the catalog meanwhile; `tools/list` waits only for what it needs.

    The catalog load starts first; the MCP SDK (about a second to import) is then imported in a worker thread while
    it goes on. With `child`, that load is the child's, on another core (core/catalog_process.py); without, its
    requests are answered in this process between the import's turns. A cached catalog is served at once and
    refreshed in the background; clients are told when it changed. If there is no cached catalog and none can be
    loaded, the process ends with one line on stderr naming the cause.
    """
    from flora_mcp.core.refresh import CatalogRefresher
    from flora_mcp.core.startup import StartupError, catalog_failure
    from flora_mcp.core.toolkit import Toolkit
    from flora_mcp.server.heap import freeze_once_loaded, pause_collection, resume_collection

    pause_collection()  # until the catalog has loaded and the heap is frozen (server/heap.py)
    try:
        toolkit = Toolkit(settings)
        await toolkit.journal.open()
    except Exception as exc:
        resume_collection()
        if child is not None:
            child.close()
        raise StartupError(str(exc)) from None

    notifier: Any = None

    async def tools_changed() -> None:
        if notifier is not None:
            await notifier.tools_changed(toolkit)

    refresher = CatalogRefresher(toolkit, on_change=tools_changed)
    try:
        cached_age = toolkit.load_cached_catalog()
        if cached_age is not None and child is not None:
            child.close()  # a cache written since it was forked
            child = None
        if cached_age is not None:
            log.info("serving %d cached FLORA techniques (%.0f s old)", len(toolkit.catalog), cached_age)
        async with anyio.create_task_group() as tg:

            async def load() -> None:
                try:
                    catalog = await toolkit.load_catalog(child)
                    log.info("serving %d FLORA techniques over stdio", len(catalog))
                except Exception as exc:
                    # The SDK reads stdin in a thread that no cancellation reaches: a server that cannot serve
                    # says why and leaves at once, rather than hang until the client closes stdin.
                    _exit_now(str(catalog_failure(settings, exc)), 1)
                await refresher.run(refresher.first_delay(None))

            schemas_allowed = anyio.Event()
            if cached_age is None:
                toolkit.defer_schemas(until=schemas_allowed)
                tg.start_soon(load)
            await anyio.to_thread.run_sync(_import_sdk)
            tg.start_soon(_set_later, schemas_allowed, SCHEMAS_GRACE)
            tg.start_soon(freeze_once_loaded, toolkit)  # the SDK is imported: what lives on is all there
            if cached_age is not None:
                # Not before: a refresh competes with the import for the one interpreter lock.
                tg.start_soon(refresher.run, refresher.first_delay(cached_age))

            from mcp.server import NotificationOptions
            from mcp.server.stdio import stdio_server

            from flora_mcp.server.handlers import create_server
            from flora_mcp.server.notifications import ToolListNotifier

            async def resolve(ctx: Any) -> Toolkit:
                return toolkit

            notifier = ToolListNotifier()
            keys = settings.state_keys.get_secret_value() if settings.state_keys else None
            server = create_server(resolve, notifier=notifier, known_toolkit=lambda: toolkit, state_keys=keys)
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options(
                    NotificationOptions(tools_changed=True, resources_changed=True)))
            tg.cancel_scope.cancel()
    finally:
        resume_collection()
        if child is not None:
            child.close()
        await toolkit.aclose()


async def _set_later(event: anyio.Event, delay: float) -> None:
    await anyio.sleep(delay)
    event.set()


def _import_sdk() -> None:
    """Import the MCP SDK: in a worker thread, so that the event loop keeps the catalog requests going."""
    import mcp.server.stdio  # noqa: F401
    import mcp.server.subscriptions  # noqa: F401
    import mcp.types  # noqa: F401


def _exit_now(message: str, code: int) -> None:
    from flora_mcp.logs import redact

    sys.stderr.write(f"flora-mcp: {redact(message)}\n")
    sys.stderr.flush()
    os._exit(code)
