"""Serving and shutdown (`_serve`): a waiting call is handed back with its run id, SIGTERM drains within the bound,
and an open server off loopback is refused.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted import DRAIN_TIMEOUT
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.hosted.hosted_support import TOKEN, bearer, data_of
from tests.support import TEST_KEY, sandbox_config, sandbox_env, server_env, settings_for


@pytest.mark.anyio
async def test_stop_waiting_hands_back_a_waiting_call_as_running_with_its_run_id(sandbox: Sandbox) -> None:
    sandbox.state.technique_delays["qr-code-generator"] = 30.0
    async with Toolkit(settings_for(sandbox, max_wait=60.0)) as toolkit:
        results: list[Any] = []
        submitted = anyio.Event()

        async def progress(percent: float, message: str) -> None:
            if message != "submitting":
                submitted.set()

        async def call() -> None:
            results.append(await toolkit.call("qr-code-generator", {"content": "x"}, progress=progress))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(10):
                await submitted.wait()
            toolkit.runs.stop_waiting()
        with anyio.fail_after(20):  # generous on a loaded machine, and a third of the 60 s it would wait
            later = await toolkit.call("qr-code-generator", {"content": "y"})
    assert results[0].status in ("pending", "running") and results[0].run_id
    assert later.status in ("pending", "running") and later.run_id  # a call after the stop is submitted, not waited for


def serve_subprocess(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flora_mcp", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def wait_for_url(proc: subprocess.Popen[str], lines: list[str]) -> str:
    """Read the server's stderr until it says where it listens; keep every line."""
    assert proc.stderr is not None
    stream = proc.stderr

    def read_until_url() -> str:
        for line in stream:
            lines.append(line)
            found = re.search(r"listening on (http://[^/\s]+)", line)
            if found:
                return found.group(1)
        raise AssertionError("server exited: " + "".join(lines))

    with anyio.fail_after(20):
        return await anyio.to_thread.run_sync(read_until_url)


@pytest.mark.anyio
async def test_the_hosted_process_sets_what_lives_on_aside_from_garbage_collection_once_ready() -> None:
    """server/heap.py: `flora-mcp --transport http` freezes its heap once the shared catalog has loaded (after the
    "ready" line); a HostedServer built in some other process (these tests' own) leaves that process's heap alone."""
    async with serve_sandbox(sandbox_config()) as box:
        proc = serve_subprocess("--transport", "http", "--port", "0", env=sandbox_env(
            box, FLORA_MCP_TOKENS=TOKEN, FLORA_LOG_LEVEL="DEBUG"))
        lines: list[str] = []
        try:
            await wait_for_url(proc, lines)
            assert proc.stderr is not None
            stream = proc.stderr

            def read_until_frozen() -> None:
                for line in stream:
                    lines.append(line)
                    if "set aside from garbage collection" in line:
                        return

            with anyio.fail_after(20):
                await anyio.to_thread.run_sync(read_until_frozen, abandon_on_cancel=True)
        finally:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    ready = next(i for i, line in enumerate(lines) if "; ready" in line)
    frozen = next(i for i, line in enumerate(lines) if "set aside from garbage collection" in line)
    assert ready < frozen
    assert int(lines[frozen].split(" objects set aside")[0].split()[-1]) > 10_000


@pytest.mark.anyio
async def test_sigterm_mid_call_returns_the_run_id_and_exits_in_bound() -> None:
    async with serve_sandbox(sandbox_config(technique_delays={"qr-code-generator": 60.0})) as box:
        proc = serve_subprocess("--transport", "http", "--port", "0", env=sandbox_env(
            box, FLORA_MCP_TOKENS=TOKEN, FLORA_POLL_INTERVAL="0.2", FLORA_MAX_WAIT="50"))
        lines: list[str] = []
        try:
            url = await wait_for_url(proc, lines)
            async with create_mcp_http_client(headers=bearer(TOKEN)) as http, \
                    streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                # The client checks results against the tools' output schemas: have them before the server goes.
                await session.list_tools()
                submitted = anyio.Event()

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message and message != "submitting":
                        submitted.set()

                signalled: list[float] = []

                async def terminate_once_submitted() -> None:
                    with anyio.fail_after(20):
                        await submitted.wait()
                    # Twice, as supervisors that signal the whole process group do: still a graceful drain.
                    proc.send_signal(signal.SIGTERM)
                    proc.send_signal(signal.SIGTERM)
                    signalled.append(anyio.current_time())

                async with anyio.create_task_group() as tg:
                    tg.start_soon(terminate_once_submitted)
                    with anyio.fail_after(15):
                        result = await session.call_tool("qr-code-generator", {"content": "sigterm"},
                                                         progress_callback=on_progress)
                returned = anyio.current_time() - signalled[0]
            data = data_of(result)
            assert data["status"] in ("pending", "running") and data["run_id"] == box.runs[0].run_id
            assert "flora_get_run" in (data.get("next_step") or "")
            # The call was let go at once, not held for the drain's limit, nor for FLORA_MAX_WAIT (50 s): the run
            # goes on for a minute. The bounds are generous: a loaded machine is seconds slow, never ten.
            assert returned < DRAIN_TIMEOUT
            code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=DRAIN_TIMEOUT + 20))
            assert code == 0
            assert not box.runs[0].finished  # the process went while the paid run went on
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            rest = proc.stderr.read() if proc.stderr else ""
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        assert TEST_KEY not in "".join(lines) + rest and TOKEN not in "".join(lines) + rest


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_binding_all_interfaces_without_auth_is_refused_in_one_line(transport: str) -> None:
    env = server_env(FLORA_API_KEY=TEST_KEY)
    done = subprocess.run([sys.executable, "-m", "flora_mcp", "--transport", transport, "--host", "0.0.0.0",
                           "--port", "0"], env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refusing to serve on 0.0.0.0 without auth" in lines[0] and "FLORA_MCP_TOKENS" in lines[0]
    assert TEST_KEY not in done.stderr
