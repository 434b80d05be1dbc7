"""Hosted mode: flora-mcp over streamable HTTP and legacy SSE, for many clients, with auth, OAuth and per-user keys.

Data flows: `serve_http` (flags -> `HostedOptions`, FLORA_MCP_TOKENS and FLORA_OAUTH_* -> `AuthPolicy` with its
`TokenChecker`, refuse an open server off loopback) -> `HostedServer` (socket, uvicorn, signals, draining) ->
`HostedApp` (Starlette routes, the OAuth protected resource metadata; the guard checks Host/Origin, then credentials
(a static token, an OAuth access token, a FLORA key: one principal each), then a session slot from `SessionQuota`
(per principal and in all), then leases the principal's toolkit from `ToolkitPool` (its own journal account, spend
and tasks; it remembers keys FLORA refused)) -> the MCP server of `flora_mcp.server.handlers`, whose resolver reads
that toolkit back from the request.
"""

from __future__ import annotations

from flora_mcp.hosted._app import MCP_PATH, MESSAGES_PATH, SSE_PATH, HostedApp
from flora_mcp.hosted._auth import AuthPolicy, Caller
from flora_mcp.hosted._options import HostedOptions, is_loopback, transport_security
from flora_mcp.hosted._pool import ToolkitPool
from flora_mcp.hosted._serve import DRAIN_TIMEOUT, HostedServer, bind, hosted_policy, serve_http

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
    "hosted_policy",
    "is_loopback",
    "serve_http",
    "transport_security",
]
