"""A real `flora-mcp` process (the console script a client config names) for the SDK client tests, on the test's own
sandbox so that what reached FLORA can be counted: over stdio (the SDK's `Client` starts it) or streamable HTTP (started
here), and killed with SIGKILL when a test needs a crash rather than a clean exit.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import anyio.abc
import httpx
from mcp import StdioServerParameters

from flora_mcp.sandbox import Sandbox
from tests.clients.clients_support import SERVER_START_TIMEOUT, flora_mcp_command, free_port, read_log
from tests.support import kill_processes_with, processes_with, sandbox_env

TRANSPORTS = ("stdio", "http")
STATELESS = "http-stateless"
"""`flora-mcp --transport http --stateless`, as hosted replicas run: no sessions, no channel back to a 2025 client."""
ERA = {"legacy": "2025-11-25", "auto": "2026-07-28"}


@dataclass
class FloraProcess:
    """What a client connects to (`target`), and how to crash the server under it."""

    transport: str
    target: Any
    marker: str
    """A value of the server's environment no other process has: finds the process the SDK started over stdio."""
    process: anyio.abc.Process | None = None
    errlog: IO[str] | None = field(default=None, repr=False)

    def pids(self) -> list[int]:
        return processes_with(self.marker)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or an OOM kill leaves it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            with anyio.fail_after(10):
                await self.process.wait()
        else:
            assert kill_processes_with(self.marker) == 1


@asynccontextmanager
async def flora_mcp(box: Sandbox, transport: str, *, journal: str | None = None,
                    **env: str) -> AsyncIterator[FloraProcess]:
    """`flora-mcp` pointed at `box` for the block, over "stdio", "http" or STATELESS; `journal` a file to share with
    a later process, else a file of its own (so that each process can be told apart by it)."""
    with tempfile.TemporaryDirectory() as scratch:
        journal = journal or os.path.join(scratch, "journal.sqlite3")
        environment = sandbox_env(box, FLORA_JOURNAL=journal, FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING",
                                  **env)
        command = flora_mcp_command()
        if transport == "stdio":
            yield FloraProcess(transport, StdioServerParameters(command=command[0], args=command[1:],
                                                                env=environment), journal)
            return
        port = free_port()
        args = [*command, "--transport", "http", "--host", "127.0.0.1", "--port", str(port),
                *(["--stateless"] if transport == STATELESS else [])]
        with open(os.path.join(scratch, "stderr.log"), "w+") as errlog:
            async with await anyio.open_process(args, env=environment, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=errlog) as process:
                server = FloraProcess(transport, f"http://127.0.0.1:{port}/mcp", journal, process, errlog)
                try:
                    await ready(server, f"http://127.0.0.1:{port}/readyz")
                    yield server
                finally:
                    if process.returncode is None:
                        process.terminate()
                        with anyio.fail_after(10):
                            await process.wait()


async def ready(server: FloraProcess, url: str) -> None:
    assert server.process is not None and server.errlog is not None
    async with httpx.AsyncClient(timeout=2.0) as http:
        with anyio.fail_after(SERVER_START_TIMEOUT):
            while True:
                if server.process.returncode is not None:
                    raise AssertionError(f"flora-mcp exited with {server.process.returncode}:\n"
                                         f"{read_log(server.errlog)}")
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)


async def journaled(journal: str, task_id: str) -> list[str]:
    """Once the task's row in the journal names its FLORA run (what a restarted server follows), its run ids.

    The row is written behind the task's state in memory: a kill between the two leaves a task that says its run
    was not known (tests/server/test_tasks_ext.py has that case); these tests kill after it.
    """
    with anyio.fail_after(30):  # a bound that cannot flake on a loaded machine, not a timing rule
        while True:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                row = db.execute("SELECT run_ids FROM mcp_tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row and (run_ids := json.loads(row[0])):
                return list(run_ids)
            await anyio.sleep(0.05)
