"""The TypeScript clients of both eras (clients/ts2_client.mjs, clients/ts1_client.mjs) against flora-mcp over stdio and
streamable HTTP, and a sandbox process whose request log says what reached FLORA.

The sandbox runs as a process of its own (with its `/_sandbox/` control routes) because the clients are processes
too: a test counts the run creations a call made by reading the log, filtered by the call's own `content`, so the
sandboxes can be shared by the tests of a module.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.clients.clients_support import (
    CLIENTS,
    NODE_BIN,
    POLL_INTERVAL,
    SANDBOX_KEY,
    SERVER_START_TIMEOUT,
    NodeTools,
    flora_mcp_command,
    free_port,
    json_output,
    read_log,
    running,
    wait_until_ready,
)
from tests.support import server_env

TS2_CLIENT = CLIENTS / "ts2_client.mjs"
TS1_CLIENT = CLIENTS / "ts1_client.mjs"
TRANSPORTS = ["stdio", "http"]
WITH_STATELESS = [*TRANSPORTS, "http-stateless"]
"""`http-stateless`: `flora-mcp --stateless`, as hosted replicas run; a 2026 client needs no session."""
CREATE_ROUTES = ("create_technique_run", "create_run")
POLL_ROUTES = ("get_technique_run", "get_run")
INVALID_PARAMS = -32602


@dataclass(frozen=True)
class Box:
    """A `python -m flora_mcp.sandbox --enable-control` process: its API base URL and what reached it."""

    base_url: str

    @property
    def origin(self) -> str:
        return self.base_url.removesuffix("/api/v1")

    def requests(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.origin}/_sandbox/requests", timeout=10.0)
        answer.raise_for_status()
        return list(answer.json()["requests"])

    def posts(self, content: str) -> int:
        """Run creations whose inputs hold `content` (the tests give each call its own)."""
        return sum(1 for r in self.requests() if r["route"] in CREATE_ROUTES and content in str(r["body"]))

    def polls(self) -> int:
        return sum(1 for r in self.requests() if r["route"] in POLL_ROUTES)

    def latest_run(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.base_url}/technique-runs", headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
                           timeout=10.0)
        answer.raise_for_status()
        return dict(max(answer.json()["technique_runs"], key=lambda run: run["created_at"]))


@contextmanager
def control_sandbox(*, delay: float) -> Iterator[Box]:
    args = [sys.executable, "-m", "flora_mcp.sandbox", "--port", "0", "--delay", str(delay), "--key", SANDBOX_KEY,
            "--enable-control"]
    with running(args, server_env(), stdout=subprocess.PIPE) as (proc, errlog):
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT)
        first = proc.stdout.readline().strip() if ready else ""  # the base URL, printed once it listens
        assert first.startswith("http://127.0.0.1:"), (first, read_log(errlog))
        yield Box(first)


def server_environment(box: Box, **env: str) -> dict[str, str]:
    """What a flora-mcp pointed at the box is started with (on top of a clean environment)."""
    return {"FLORA_BASE_URL": box.base_url, "FLORA_API_KEY": SANDBOX_KEY, "FLORA_JOURNAL": ":memory:",
            "FLORA_CATALOG_CACHE": "off", "FLORA_POLL_INTERVAL": POLL_INTERVAL, "FLORA_LOG_LEVEL": "WARNING", **env}


@contextmanager
def hosted_on(box: Box, *extra: str, **env: str) -> Iterator[str]:
    """`flora-mcp --transport http EXTRA` pointed at the box (stateful unless `--stateless`, so both eras);
    yields its /mcp URL."""
    port = free_port()
    args = [*flora_mcp_command(), "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *extra]
    with running(args, server_env(**server_environment(box, **env))) as (proc, errlog):
        wait_until_ready(proc, errlog, f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}/mcp"


def stdio_target(box: Box, **env: str) -> list[str]:
    """A client's arguments that make it spawn flora-mcp over stdio, with only this environment (and the SDK's
    safe defaults): what a user's client config gives a server. PYTHONPATH too, when the tests have one, so that the
    server is the code under test (an editable install may point at another checkout)."""
    values = server_environment(box, **env)
    if os.environ.get("PYTHONPATH"):
        values["PYTHONPATH"] = os.environ["PYTHONPATH"]
    pairs = [item for key, value in values.items() for item in ("--env", f"{key}={value}")]
    return [*pairs, "--", *flora_mcp_command()]


def run_client(node_tools: NodeTools, script: str, scenario: str, target: list[str], *options: str,
               timeout: float = SERVER_START_TIMEOUT * 3, fails: bool = False) -> dict[str, Any]:
    """One client run; its JSON report, which must say the scenario ran to its end (or, `fails`, that the client
    gave up with an error)."""
    client = TS2_CLIENT if script == "ts2" else TS1_CLIENT
    proc = node_tools.run([str(NODE_BIN / "node"), str(client), scenario, *options, *target], timeout=timeout)
    report: dict[str, Any] = json_output(proc)
    assert (proc.returncode, "error" in report) == ((1, True) if fails else (0, False)), (report, proc.stderr[-3000:])
    return report


def structured(result: dict[str, Any] | None) -> dict[str, Any]:
    assert result is not None and isinstance(result.get("structuredContent"), dict), result
    return dict(result["structuredContent"])


def box_fixture(delay: float) -> Any:
    """A module-scoped fixture of a control sandbox whose runs take `delay` seconds."""

    @pytest.fixture(scope="module")
    def fixture(node_tools: NodeTools) -> Iterator[Box]:
        with control_sandbox(delay=delay) as box:
            yield box

    return fixture
