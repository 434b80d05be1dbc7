"""What the hosted-mode tests share: a hosted server on loopback for a block, MCP sessions and raw requests to it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import SecretStr

from flora_mcp.config import Settings
from flora_mcp.hosted import HostedOptions, HostedServer, bind, hosted_policy
from flora_mcp.sandbox import Sandbox
from tests.support import settings_for

TOKEN = "tok_hosted_test_0123456789"


@asynccontextmanager
async def hosted(settings: Settings, *, sock: socket.socket | None = None,
                 **options: Any) -> AsyncIterator[HostedServer]:
    """A hosted server on a free loopback port (or on `sock`, bound already) for the block; drained after it."""
    opts = HostedOptions(host="127.0.0.1", port=0, **options)
    sock = sock or bind("127.0.0.1", 0)
    server = HostedServer(settings, opts, hosted_policy(settings, opts, sock.getsockname()[1]), sock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.started.wait()
            while not server.pool.ready:
                await anyio.sleep(0.01)
        try:
            yield server
        finally:
            with anyio.fail_after(15):
                await server.shutdown()


@asynccontextmanager
async def mcp_session(server: HostedServer, headers: dict[str, str] | None = None,
                      transport: str = "http") -> AsyncIterator[ClientSession]:
    """An initialized MCP client session over streamable HTTP (/mcp) or legacy SSE (/sse)."""
    if transport == "sse":
        async with sse_client(f"{server.url}/sse", headers=headers) as (read, write), \
                ClientSession(read, write) as session:
            with anyio.fail_after(10):
                await session.initialize()
            yield session
        return
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        with anyio.fail_after(10):
            await session.initialize()
        yield session


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def token_settings(box: Sandbox, **overrides: Any) -> Settings:
    return settings_for(box, mcp_tokens=SecretStr(f"other-token-abcdef,{TOKEN}"), **overrides)


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def raw_initialize(server: HostedServer, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{server.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


def data_of(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)
