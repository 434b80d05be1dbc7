"""server/tracing.py: the SDK's span layer stays where something records spans (a tracer provider installed, OTEL_
variables set) and goes where nothing would; an installed provider still gets a span for every MCP request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from mcp.server._otel import OpenTelemetryMiddleware
from opentelemetry import trace

from flora_mcp.server.handlers import create_server
from flora_mcp.server.tracing import tracing_installed


async def nobody(ctx: Any) -> Any:
    raise AssertionError("no request is served here")


def span_layers() -> int:
    return sum(isinstance(m, OpenTelemetryMiddleware) for m in create_server(nobody).middleware)


@pytest.fixture
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)


def test_without_a_provider_or_otel_variables_the_span_layer_goes(no_otel_environment: None) -> None:
    assert not tracing_installed()
    assert span_layers() == 0


def test_an_otel_variable_keeps_the_span_layer(no_otel_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert span_layers() == 1


def test_an_installed_provider_keeps_the_span_layer(no_otel_environment: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    assert span_layers() == 1


RECORDING_CLIENT = textwrap.dedent('''
    import contextlib, anyio
    from opentelemetry import trace
    from mcp import Client

    names = []

    class Tracer(trace.NoOpTracer):
        @contextlib.contextmanager
        def start_as_current_span(self, name, *args, kind=None, **kwargs):
            names.append(f"{name} {kind.name if kind else ''}")
            yield trace.INVALID_SPAN

    class Provider(trace.NoOpTracerProvider):
        def get_tracer(self, *args, **kwargs):
            return Tracer()

    trace.set_tracer_provider(Provider())  # as opentelemetry-instrument does, before the server is made
    from flora_mcp.server.handlers import create_server

    async def resolve(ctx):
        raise RuntimeError("not needed for a ping")

    async def main():
        async with Client(create_server(resolve), mode="legacy") as client:
            await client.send_ping()
        print(sorted(set(names)))

    anyio.run(main)
''')


def test_an_installed_provider_gets_a_span_for_every_request(no_otel_environment: None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", RECORDING_CLIENT], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    # The server's spans (kind SERVER), as the SDK names them; the client makes spans of its own (CLIENT).
    assert "'ping SERVER'" in done.stdout and "'initialize SERVER'" in done.stdout, done.stdout
