"""OpenTelemetry spans of MCP requests: the SDK's span layer, kept only where something can record what it makes.

The SDK puts `OpenTelemetryMiddleware` first on every server: a SERVER span per request, which stays a no-op until a
tracer provider is installed. The no-op still costs: a span object, a trace context read from the request's `_meta`, a
context attached and detached: about 5% of the main thread's samples (py-spy --gil, 100 quick calls in flight). A
server made while no provider is installed and no `OTEL_` variable is set (an operator who traces sets one, or runs
under `opentelemetry-instrument`, which installs the provider before flora-mcp starts) goes without it.
"""

from __future__ import annotations

import os
from typing import Any

from mcp.server import Server
from mcp.server._otel import OpenTelemetryMiddleware  # the SDK's own layer: there is no public switch (2.3)
from opentelemetry import trace

__all__ = ["drop_idle_tracing", "tracing_installed"]


def tracing_installed() -> bool:
    """Whether spans made now could be recorded: a tracer provider is installed, or the environment configures
    OpenTelemetry (`OTEL_*`)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    return any(name.startswith("OTEL_") for name in os.environ)


def drop_idle_tracing(server: Server[Any]) -> None:
    """Take the SDK's span layer off `server` when nothing would record its spans (`tracing_installed`)."""
    if not tracing_installed():
        server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
