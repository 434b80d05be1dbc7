"""Hosted mode: flora-mcp over streamable HTTP and legacy SSE, for many clients, with auth and per-user keys.

Data flows: `serve_http` (flags -> `HostedOptions`, FLORA_MCP_TOKENS -> `AuthPolicy`, refuse an open server off
loopback) -> `HostedServer` (socket, uvicorn, signals, draining) -> `HostedApp` (Starlette routes; the guard checks
Host/Origin, then credentials, then a session slot from `SessionQuota` (per principal and in all), then leases the
caller's toolkit from `ToolkitPool`, which remembers keys FLORA refused) -> the MCP server of
`flora_mcp.server.handlers`, whose resolver reads that toolkit back from the request.
"""

from __future__ import annotations

from flora_mcp.hosted._app import MCP_PATH, MESSAGES_PATH, SSE_PATH, HostedApp
from flora_mcp.hosted._auth import AuthPolicy, Caller
from flora_mcp.hosted._options import HostedOptions, is_loopback, transport_security
from flora_mcp.hosted._pool import ToolkitPool
from flora_mcp.hosted._serve import DRAIN_TIMEOUT, HostedServer, bind, serve_http

__all__ = [
    "DRAIN_TIMEOUT",
    "MCP_PATH",
    "MESSAGES_PATH",
    "SSE_PATH",
    "AuthPolicy",
    "Caller",
    "HostedApp",
    "HostedOptions",
    "HostedServer",
    "ToolkitPool",
    "bind",
    "is_loopback",
    "serve_http",
    "transport_security",
]
