"""Hosted flora-mcp under load: streamable HTTP, 50 clients at once, against the bare SDK server served the same way.

The baseline is the SDK's low-level `Server` with one trivial tool, its `streamable_http_app` under uvicorn (h11, as
flora-mcp serves), in its own process. Both run stateful sessions; every client opens its own. Rounds alternate
between the two servers so that a burst of load from elsewhere spoils a round of each, not one server's figures.
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from common import PY, RUN_PY, Box, Report, ms, proc_status_mb, quantile, sandbox, server_env

CLIENTS = 50
ERRORS: dict[str, int] = {}
"""Failed load requests per server URL."""
PROTOCOL = "2025-06-18"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    pid: int
    call: tuple[str, dict[str, Any]]
    """The quick tools/call: name and arguments."""


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(400):
            try:
                await client.post(url, content=b"{}", headers=HEADERS)
                return
            except httpx.TransportError:
                await anyio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@asynccontextmanager
async def serve(command: list[str], env: dict[str, str] | None, call: tuple[str, dict[str, Any]], port: int
                ) -> AsyncIterator[Served]:
    async with await anyio.open_process(command, env=env, stdout=None, stderr=None) as proc:
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            await _wait_up(url)
            yield Served(url, proc.pid, call)
        finally:
            proc.terminate()
            with anyio.move_on_after(10):
                await proc.wait()


def flora_server(box: Box) -> tuple[list[str], dict[str, str], tuple[str, dict[str, Any]], int]:
    port = _free_port()
    env = server_env(box, FLORA_MAX_SESSIONS_PER_PRINCIPAL="10000", FLORA_MAX_SESSIONS="10000")
    return ([PY, "-m", "flora_mcp", "--transport", "http", "--port", str(port)], env, ("flora_spend", {}), port)


def baseline_server() -> tuple[list[str], None, tuple[str, dict[str, Any]], int]:
    port = _free_port()
    return ([PY, str(RUN_PY), "--serve-baseline", str(port)], None, ("echo", {"text": "hi"}), port)


def baseline_main(port: str) -> None:
    """The bare SDK low-level Server with one trivial tool, over streamable HTTP (the baseline of this section)."""
    import mcp.types as types
    import uvicorn
    from mcp.server import Server

    tool = types.Tool(name="echo", description="Echo the text.", input_schema={
        "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: Any) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=str((params.arguments or {}).get("text")))])

    server = Server("baseline", version="1", on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(streamable_http_path="/mcp")
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_config=None, access_log=False, http="h11", ws="none")


class Session:
    """One MCP session over streamable HTTP with plain httpx (the bench's own CPU stays small)."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url, self.headers, self.next_id = http, url, dict(HEADERS), 1

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, **({"params": params} if params else {})}
        response = await self.http.post(self.url, content=json.dumps(body), headers=self.headers)
        response.raise_for_status()
        if "mcp-session-id" in response.headers:
            self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        text = response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and '"id"' in line)
        message: dict[str, Any] = json.loads(text)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message

    async def open(self) -> None:
        await self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                          "clientInfo": {"name": "bench", "version": "1"}})
        self.headers["mcp-protocol-version"] = PROTOCOL
        body = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
        (await self.http.post(self.url, content=body, headers=self.headers)).raise_for_status()


async def load_round(served: Served, method: str, each: int) -> tuple[float, list[float]]:
    """CLIENTS sessions, each making `each` requests in a row; (requests per second, latencies).

    A request that fails (a dropped connection on this loaded machine) is counted in ERRORS, not timed."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        sessions = [Session(http, served.url) for _ in range(CLIENTS)]
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(session.open)
        name, arguments = served.call
        params = {"name": name, "arguments": arguments} if method == "tools/call" else None
        latencies: list[float] = []

        async def client(session: Session) -> None:
            for _ in range(each):
                started = time.perf_counter()
                try:
                    reply = await session.request(method, params)
                except httpx.HTTPError:
                    ERRORS[served.url] = ERRORS.get(served.url, 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
                if method == "tools/call" and reply["result"].get("isError"):
                    raise RuntimeError(f"{name} failed: {reply['result']}")

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(client, session)
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


async def open_idle(served: Served, count: int) -> tuple[float, int]:
    """Open `count` sessions and leave them idle; (KB of server RSS per session, errors)."""
    before = proc_status_mb(served.pid, "VmRSS") or 0.0
    errors = 0
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        limiter = anyio.CapacityLimiter(CLIENTS)

        async def one() -> None:
            nonlocal errors
            async with limiter:
                try:
                    await Session(http, served.url).open()
                except (httpx.HTTPError, RuntimeError, StopIteration):
                    errors += 1

        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)
    await anyio.sleep(0.5)
    after = proc_status_mb(served.pid, "VmRSS") or 0.0
    return (after - before) * 1024 / max(count - errors, 1), errors


async def bench_hosted(report: Report, quick: bool) -> None:
    report.say("## Hosted throughput: streamable HTTP, 50 clients")
    report.say()
    report.say(__doc__.split("\n\n", 1)[1].replace("\n", " ").strip() + " tools/call is `flora_spend` (answered "
               "from the journal) against the baseline's `echo`. Sessions: opened (initialize + initialized) and left "
               "idle; memory per session = the server's RSS growth / sessions.")
    report.say()
    rounds, each = (1, 4) if quick else (4, 12)
    idle = 300 if quick else 2000
    async with sandbox(latency=0.0) as box:
        async with serve(*flora_server(box)) as ours, serve(*baseline_server()) as base:
            figures: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
            for method in ("tools/list", "tools/call"):
                await load_round(ours, method, 2)  # warm: imports, validators, connections
                await load_round(base, method, 2)
                for index in range(rounds):
                    order = [("flora-mcp", ours), ("baseline", base)]
                    for label, served in order if index % 2 == 0 else order[::-1]:
                        figures.setdefault((method, label), []).append(await load_round(served, method, each))
            rows = []
            for method in ("tools/list", "tools/call"):
                ours_rounds, base_rounds = figures[(method, "flora-mcp")], figures[(method, "baseline")]
                rps = statistics.median(r for r, _ in ours_rounds)
                base_rps = statistics.median(r for r, _ in base_rounds)
                p99 = statistics.median(quantile(lat, 0.99) for _, lat in ours_rounds)
                base_p99 = statistics.median(quantile(lat, 0.99) for _, lat in base_rounds)
                rows.append([method, f"{rps:.0f}", f"{base_rps:.0f}", f"{rps / base_rps:.2f}", ms(p99), ms(base_p99),
                             f"{p99 / base_p99:.2f}",
                             report.target(f"hosted {method}: throughput >= 0.8 x baseline", rps >= 0.8 * base_rps,
                                           f"{rps / base_rps:.2f}x"),
                             report.target(f"hosted {method}: p99 <= 1.5 x baseline", p99 <= 1.5 * base_p99,
                                           f"{p99 / base_p99:.2f}x")])
            report.table(["request", "flora-mcp req/s", "baseline req/s", "ratio", "flora-mcp p99", "baseline p99",
                          "p99 ratio", "throughput >= 0.8 x", "p99 <= 1.5 x"], rows)
            failed = f"flora-mcp {ERRORS.get(ours.url, 0)}, baseline {ERRORS.get(base.url, 0)}"
            report.say(f"Failed load requests: {failed}.")
            report.say()
            per_session, errors = await open_idle(ours, idle)
            base_per_session, base_errors = await open_idle(base, idle)
    report.table(["sessions opened", "flora-mcp KB/session", "baseline KB/session", "flora-mcp errors",
                  "<= 40 KB per session", f"{idle:,} sessions without errors"],
                 [[f"{idle:,}", f"{per_session:.1f}", f"{base_per_session:.1f}", str(errors),
                   report.target("hosted memory per idle session <= 40 KB", per_session <= 40, f"{per_session:.1f} KB"),
                   report.target(f"hosted {idle:,} sessions open without errors", errors == 0 and base_errors >= 0,
                                 f"{errors} errors")]])


if __name__ == "__main__":
    sys.exit("run through bench/run.py --only hosted")
