"""flora-mcp as a real subprocess over stdio, as Claude Desktop and Claude Code run it."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from flora_mcp.sandbox import Sandbox
from tests.support import TEST_KEY, server_env, stdio_session


@pytest.mark.anyio
async def test_sandbox_mode_lists_and_runs_a_technique_over_stdio() -> None:
    async with stdio_session(["--sandbox"], server_env(FLORA_POLL_INTERVAL="0.05")) as (session, _):
        tools = (await session.list_tools()).tools
        names = {t.name for t in tools}
        assert {"cctv-cam", "qr-code-generator", "flora_get_run"} <= names
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        result = await session.call_tool("qr-code-generator", {"content": "over stdio"},
                                         progress_callback=on_progress)
        assert result.is_error is False
        data = result.structured_content or {}
        assert data["status"] == "completed" and data["outputs"][0]["url"].startswith("http://127.0.0.1:")
        assert progress and progress[-1] == 100.0


@pytest.mark.anyio
async def test_the_key_never_reaches_stdout_stderr_or_results(sandbox: Sandbox) -> None:
    env = server_env(FLORA_API_KEY=TEST_KEY, FLORA_BASE_URL=sandbox.base_url, FLORA_LOG_LEVEL="DEBUG",
                     FLORA_POLL_INTERVAL="0.05", FLORA_MAX_RETRIES="0")
    seen: list[str] = []
    async with stdio_session([], env) as (session, errlog):
        seen.append((await session.list_tools()).model_dump_json())
        sandbox.faults.inject(route="create_technique_run", kind="status", status=401, code="unauthorized")
        seen.append((await session.call_tool("qr-code-generator", {"content": "x"})).model_dump_json())
        seen.append((await session.call_tool("cctv-cam", {"input_image": "nope"})).model_dump_json())
        seen.append((await session.call_tool("qr-code-generator", {"content": "y"})).model_dump_json())
        errlog.seek(0)
        seen.append(errlog.read())
    assert "unauthorized" in seen[1]
    assert "HTTP Request" in seen[-1]  # DEBUG logging was on, and went to stderr
    assert all(TEST_KEY not in text for text in seen)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run flora-mcp with stdin held open, as a client would, until it exits by itself."""
    with subprocess.Popen([sys.executable, "-m", "flora_mcp", *args], env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            proc.wait(timeout=60)
        finally:
            proc.kill()
        stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_missing_key_is_one_clear_line_and_exit_2() -> None:
    done = run_cli(env=server_env())
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "FLORA_API_KEY is not set" in lines[0] and "--sandbox" in lines[0]


def test_invalid_setting_is_one_clear_line_and_exit_2() -> None:
    done = run_cli(env=server_env(FLORA_API_KEY=TEST_KEY, FLORA_POLL_INTERVAL="soon"))
    assert done.returncode == 2
    assert "FLORA_POLL_INTERVAL" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.anyio
async def test_a_wrong_key_stops_the_server_with_one_line_naming_the_cause(sandbox: Sandbox) -> None:
    wrong = "sk_live_WRONG0key0for0this0test"
    env = server_env(FLORA_API_KEY=wrong, FLORA_BASE_URL=sandbox.base_url)
    done = await anyio.to_thread.run_sync(lambda: run_cli(env=env))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("flora-mcp: cannot load the FLORA technique catalog") and "unauthorized" in last
    assert "request-id req_" in last and "Check FLORA_API_KEY" in last
    assert wrong not in done.stderr


def test_an_unreachable_host_stops_the_server_with_one_line() -> None:
    env = server_env(FLORA_API_KEY=TEST_KEY, FLORA_BASE_URL="http://127.0.0.1:9/api/v1", FLORA_MAX_RETRIES="0")
    done = run_cli(env=env)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot load the FLORA technique catalog from http://127.0.0.1:9/api/v1" in last
    assert "connection failed" in last and TEST_KEY not in done.stderr


@pytest.mark.anyio
async def test_what_lives_on_is_set_aside_from_garbage_collection_once_the_catalog_loaded() -> None:
    """server/heap.py: after start-up (the SDK imported, the catalog loaded) the stdio server freezes its heap."""
    env = server_env(FLORA_LOG_LEVEL="DEBUG", FLORA_POLL_INTERVAL="0.05")
    async with stdio_session(["--sandbox"], env) as (session, errlog):
        assert (await session.list_tools()).tools
        for _ in range(200):  # the freeze follows the catalog's load; at most 10 s
            errlog.seek(0)
            if "set aside from garbage collection" in errlog.read():
                break
            await anyio.sleep(0.05)
        errlog.seek(0)
        line = next(x for x in errlog.read().splitlines() if "set aside from garbage collection" in x)
    assert int(line.split(" objects set aside")[0].split()[-1]) > 10_000  # the SDK, pydantic, the catalog
    assert "left from start-up collected first, collection resumed" in line  # it started with collection paused
