"""What tests across the packages share, defined once.

- The test key and a sandbox for it (`TEST_KEY`, `sandbox_config`), and settings pointed at one (`settings_for`).
- An MCP client for a toolkit, in memory (`mcp_client`) or over a `python -m flora_mcp` subprocess (`stdio_session`).
- The environment of a process a test starts: this one's without any FLORA_* variable (`clean_env`), plus nothing
  written to disk (`server_env`), plus pointed at a sandbox (`sandbox_env`).
- Readers of the sandbox's request log (`posts`, `polls`): what reached FLORA, by either route.
- A hand-written `http.server` answering in a thread for a block (`serve_in_thread`), for what the sandbox cannot be.
- Faults the sandbox cannot make: a disk that fills up under the journal (`FullDisk`), a store whose engine fails
  writes it cannot absorb (`FailingWrites`), a server SIGKILLed while its create request is in flight
  (`kill_during_create`, `kill_processes_with`).

The fixtures built on these (`sandbox`, `toolkit`, `anyio_backend`) are in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from socketserver import BaseServer
from typing import IO, Any

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Account, Sandbox, SandboxConfig
from flora_mcp.server.handlers import create_server
from flora_mcp.server.notifications import ToolListNotifier
from flora_mcp.store import SQLiteStore
from flora_mcp.store.base import Step

# Every test talks to the sandbox with this key; .ci/run checks that it never appears in the suite's output.
TEST_KEY = "sk_live_TEST0secret0key0never0logged"

ODD_KEY = "flora-acct-7f3Kq9ZxW2mB8vLr"
"""A FLORA key the key pattern does not match (not `sk_`-shaped): hidden only if it was registered."""


def echoing(key: str) -> str:
    """An error message of a server that echoes the key it was sent, as some do."""
    return f"API key {key} is not allowed to run this technique"


STDIO_START_TIMEOUT = 30.0
"""How long a `python -m flora_mcp` subprocess may take to answer `initialize`."""


def sandbox_config(**overrides: Any) -> SandboxConfig:
    """A sandbox for the test key whose runs are not announced as slower than they are (clients poll at once)."""
    overrides.setdefault("keys", {TEST_KEY: Account()})
    overrides.setdefault("estimate_scale", 0.0)
    return SandboxConfig(**overrides)


def settings_for(box: Sandbox, **overrides: Any) -> Settings:
    """Settings pointed at a sandbox, fast to poll, journal in memory."""
    values: dict[str, Any] = {"api_key": TEST_KEY, "base_url": box.base_url, "journal": ":memory:",
                              "poll_interval": 0.05, "max_wait": 20.0, "tools_mode": "full",
                              "catalog_cache": "off"}
    values.update(overrides)
    return Settings(**values)


def mcp_client(kit: Toolkit, *, mode: str = "legacy", notifier: ToolListNotifier | None = None,
               raise_exceptions: bool = True, **options: Any) -> Client:
    """An MCP client connected in memory to the server of `kit` (the SDK's `Client`; enter it to connect)."""

    async def resolve(ctx: object) -> Toolkit:
        return kit

    return Client(create_server(resolve, notifier=notifier), mode=mode, raise_exceptions=raise_exceptions, **options)


def clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without FLORA_* (nor any of `prefixes`): a user's settings must not leak in.

    The terminal's size goes too (pytest-xdist workers set COLUMNS), so a child's output is laid out the same way under
    every runner.
    """
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("FLORA_", *prefixes)) and k not in ("COLUMNS", "LINES")}


def server_env(**values: str) -> dict[str, str]:
    """The environment of a flora-mcp process a test starts: clean, journal in memory, no catalog cache, `values`."""
    return {**clean_env(), "FLORA_JOURNAL": ":memory:", "FLORA_CATALOG_CACHE": "off", **values}


def sandbox_env(box: Sandbox, **values: str) -> dict[str, str]:
    """`server_env` pointed at a sandbox with the test key, every technique a tool (as `settings_for`)."""
    return server_env(**{"FLORA_API_KEY": TEST_KEY, "FLORA_BASE_URL": box.base_url, "FLORA_TOOLS_MODE": "full",
                         **values})


@asynccontextmanager
async def stdio_session(args: list[str], env: dict[str, str], *, prefix: Sequence[str] = (),
                        **session_options: Any) -> AsyncIterator[tuple[ClientSession, IO[str]]]:
    """An initialized MCP session with `python -m flora_mcp ARGS` over stdio, and the file its stderr goes to.

    `prefix`: a command the server runs under (`unshare ...`), its own arguments then `python -m flora_mcp ARGS`.
    """
    command = [*prefix, sys.executable, "-m", "flora_mcp", *args]
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    with tempfile.TemporaryFile("w+") as errlog:
        async with (stdio_client(params, errlog=errlog) as (read, write),
                    ClientSession(read, write, **session_options) as session):
            with anyio.fail_after(STDIO_START_TIMEOUT):
                await session.initialize()
            yield session, errlog


def posts(box: Sandbox) -> int:
    """Run creations that reached the sandbox, by either create route."""
    return len(box.requests_for("create_technique_run")) + len(box.requests_for("create_run"))


def polls(box: Sandbox) -> int:
    """Run polls that reached the sandbox, by either route (nested under the technique or top-level)."""
    return len(box.requests_for("get_technique_run")) + len(box.requests_for("get_run"))


@contextmanager
def serve_in_thread(server: BaseServer) -> Iterator[None]:
    """`server` answering in a daemon thread for the block, then shut down and closed."""
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


class FullDisk:
    """A journal connection on a disk that fills up: every write after the first `allowed` ones raises `error`, once
    `full()` says the disk is full (from the start by default).

    Put in place of a `SQLiteStore`'s connection (`store._db`); reads go through untouched.
    """

    def __init__(self, inner: sqlite3.Connection, *, allowed: int, error: BaseException,
                 full: Callable[[], bool] = lambda: True) -> None:
        self.inner = inner
        self.allowed = allowed
        self.error = error
        self.full = full
        self.failed = 0

    def execute(self, sql: str, *params: Any) -> Any:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            if self.allowed <= 0 and self.full():
                self.failed += 1
                raise self.error
            self.allowed -= 1
        return self.inner.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FailingWrites(SQLiteStore):
    """A store whose engine fails every write while `failing()` says so, and raises it to the caller: a database gone
    away or read-only, a full disk on an engine that cannot fall back to memory; after `stall` seconds, as a connection
    pool waits for a database that is down (`abandoned` counts the writes whose caller stopped waiting first). Reads go
    through untouched."""

    def __init__(self, path: str, *, failing: Callable[[], bool], error: BaseException,
                 stall: float = 0.0) -> None:
        super().__init__(path)
        self.failing = failing
        self.error = error
        self.stall = stall
        self.failed = 0
        self.abandoned = 0

    async def _transact(self, steps: Sequence[Step]) -> list[list[tuple[Any, ...]]]:
        writes = any(step.sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for step in steps)
        if writes and self.failing():
            self.failed += 1
            try:
                await anyio.sleep(self.stall)
            except anyio.get_cancelled_exc_class():
                self.abandoned += 1  # the caller stopped waiting before the store answered
                raise
            raise self.error
        return await super()._transact(steps)


def processes_with(marker: str) -> list[int]:
    """The ids of the processes (not this one) whose environment names `marker` (a journal path of the test's own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


def kill_processes_with(marker: str) -> int:
    """SIGKILL every process whose environment names `marker` (a journal path of the test's own); how many."""
    found = processes_with(marker)
    for pid in found:
        os.kill(pid, signal.SIGKILL)
    return len(found)


async def kill_during_create(box: Sandbox, env: dict[str, str], tool: str, arguments: dict[str, Any]) -> str:
    """Start `python -m flora_mcp` on `env` (whose FLORA_JOURNAL is a file), call `tool`, and SIGKILL the server once
    FLORA has made the run and before its answer arrives (a stall after the handler); the id of the run it made."""
    journal = env["FLORA_JOURNAL"]
    before = len(box.runs)
    box.faults.inject(route="create_technique_run", kind="stall", seconds=60.0, when="after")
    async with stdio_session([], env) as (session, _), anyio.create_task_group() as tg:

        async def doomed_call() -> None:
            try:
                await session.call_tool(tool, arguments)
            except Exception:  # the server dies under it: "Connection closed"
                return

        tg.start_soon(doomed_call)
        with anyio.fail_after(STDIO_START_TIMEOUT):
            while len(box.runs) == before:
                await anyio.sleep(0.02)
        [create] = box.requests_for("create_technique_run")[-1:]
        assert create.status == 0, "the create was answered before the kill"
        assert kill_processes_with(journal) == 1
        tg.cancel_scope.cancel()
    box.faults.clear()
    return box.runs[-1].run_id


class StdioPeer:
    """A JSON-RPC client over a flora-mcp process's stdin and stdout."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.lines = TextReceiveStream(process.stdout)  # type: ignore[arg-type]
        self.buffer = ""
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response to one request (its `result`, or its `error` under the key "error")."""
        self.next_id += 1
        await self.send({"id": self.next_id, "method": method, "params": params or {}})
        with anyio.fail_after(20):
            while True:
                while "\n" not in self.buffer:
                    self.buffer += await self.lines.receive()
                line, self.buffer = self.buffer.split("\n", 1)
                message = json.loads(line)
                if message.get("id") == self.next_id:
                    return message.get("result") or {"error": message["error"]}
