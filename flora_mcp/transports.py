"""Serving the MCP server: stdio for local clients; streamable HTTP and SSE for hosted mode (flora_mcp.hosted)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import anyio

from flora_mcp.config import Settings

__all__ = ["serve", "serve_stdio"]

log = logging.getLogger("flora_mcp")


async def serve(settings: Settings, args: argparse.Namespace) -> None:
    """Serve on the transport the flags ask for."""
    from flora_mcp.cli import settings_with_sandbox

    async with settings_with_sandbox(settings, args.sandbox) as effective:
        if args.transport == "stdio":
            await serve_stdio(effective)
        else:
            from flora_mcp.hosted import serve_http

            await serve_http(effective, args)


async def serve_stdio(settings: Settings) -> None:
    """Answer `initialize` at once and load the catalog meanwhile; `tools/list` waits only for what it needs.

    If the catalog cannot be loaded the process ends with one line on stderr that names the cause.
    """
    from mcp.server import NotificationOptions
    from mcp.server.stdio import stdio_server

    from flora_mcp.cli import StartupError, catalog_failure
    from flora_mcp.server import create_server
    from flora_mcp.toolkit import Toolkit

    try:
        toolkit = Toolkit(settings)
    except Exception as exc:
        raise StartupError(str(exc)) from None

    async def resolve(ctx: Any) -> Toolkit:
        return toolkit

    server = create_server(resolve)
    try:
        async with anyio.create_task_group() as tg:

            async def load() -> None:
                try:
                    catalog = await toolkit.load_catalog()
                    log.info("serving %d FLORA techniques over stdio", len(catalog))
                except Exception as exc:
                    # The SDK reads stdin in a thread that no cancellation reaches: a server that cannot serve
                    # says why and leaves at once, rather than hang until the client closes stdin.
                    _exit_now(str(catalog_failure(settings, exc)), 1)

            tg.start_soon(load)
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options(
                    NotificationOptions(tools_changed=True, resources_changed=True)))
            tg.cancel_scope.cancel()
    finally:
        await toolkit.aclose()


def _exit_now(message: str, code: int) -> None:
    from flora_mcp.logs import redact

    sys.stderr.write(f"flora-mcp: {redact(message)}\n")
    sys.stderr.flush()
    os._exit(code)
