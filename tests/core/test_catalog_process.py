"""core/catalog_process.py: the first catalog loaded by a forked child while the server imports the MCP SDK."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from flora_mcp.api.models import Technique
from flora_mcp.config import Settings
from flora_mcp.core.catalog_process import CatalogProcess, start_catalog_process
from flora_mcp.core.loading import catalog_cache_for
from flora_mcp.core.startup import StartupError
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.server.test_stdio import run_cli
from tests.support import TEST_KEY, sandbox_config, sandbox_env, server_env, settings_for, stdio_session

pytestmark = pytest.mark.anyio

_WRITER = """
import os, pickle, struct, sys
frames = pickle.loads(bytes.fromhex(sys.argv[1]))
out = sys.stdout.buffer
for frame in frames:
    body = frame if isinstance(frame, bytes) else pickle.dumps(frame)
    out.write(struct.pack("!Q", len(body)) + body)
out.flush()
"""


def _child_sending(*frames: Any) -> tuple[CatalogProcess, subprocess.Popen[bytes]]:
    """A real child process that writes these frames to its pipe (a bytes frame goes as it is) and exits."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, pickle.dumps(list(frames)).hex()],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return CatalogProcess(proc.pid, os.dup(proc.stdout.fileno())), proc


def _done(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    proc.stdout.close()
    proc.wait()  # reaped already: Popen takes that as an exit


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


async def test_the_listed_items_then_the_techniques_arrive_and_the_child_is_reaped() -> None:
    listed = [Technique(technique_id="tech_a", slug="a", name="A")]
    loaded = [Technique(technique_id="tech_a", slug="a", name="A", inputs=[{"id": "prompt", "type": "text"}])]
    child, proc = _child_sending(("listed", listed), ("loaded", loaded))
    seen: list[list[Technique]] = []

    async def on_listed(items: list[Technique]) -> None:
        seen.append(items)

    techniques = await child.techniques(on_listed)
    assert seen == [listed]
    assert techniques == loaded and techniques is not None and techniques[0].inputs is not None
    assert _reaped(proc.pid) and child.pid is None
    _done(proc)


async def test_the_failure_line_of_the_child_is_raised_as_it_is() -> None:
    line = "cannot load the FLORA technique catalog from http://x: no (HTTP 401 unauthorized). Check FLORA_API_KEY."
    child, proc = _child_sending(("listed", []), ("failed", line))
    with pytest.raises(StartupError) as raised:
        await child.techniques()
    assert str(raised.value) == line
    assert _reaped(proc.pid)
    _done(proc)


@pytest.mark.parametrize("frames", [(), (b"not a pickle",), (("listed", []),), (("loaded-ish", []),)],
                         ids=["nothing", "garbage", "listed then nothing", "an unknown frame"])
async def test_a_child_that_sends_no_catalog_leaves_the_load_here(frames: tuple[Any, ...]) -> None:
    child, proc = _child_sending(*frames)
    assert await child.techniques() is None
    assert _reaped(proc.pid)
    _done(proc)


async def test_closing_early_ends_a_child_that_still_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = CatalogProcess(proc.pid, os.dup(proc.stdout.fileno()))
    closing = threading.Thread(target=child.close)
    closing.start()
    try:
        for _ in range(400):  # close() ends the child and reaps it; at most 20 s
            if not closing.is_alive():
                break
            await anyio.sleep(0.05)
        assert not closing.is_alive() and _reaped(proc.pid)
    finally:
        proc.kill()  # for a close() that waits on the child instead of ending it
        closing.join()
    assert await child.techniques() is None  # nothing more to read: the load is this process's
    _done(proc)


def test_no_child_where_a_fork_would_not_be_safe_or_of_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(api_key=SecretStr(TEST_KEY), base_url="https://flora.test/api/v1",
                        catalog_cache=str(tmp_path))
    cache = catalog_cache_for(settings, TEST_KEY)
    assert cache is not None
    cache.path.parent.mkdir(parents=True, exist_ok=True)
    cache.path.write_text("{}")
    assert start_catalog_process(settings) is None  # a cached catalog is served at once
    cache.path.unlink()
    assert start_catalog_process(settings.model_copy(update={"api_key": None})) is None  # no key, no catalog
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert start_catalog_process(settings) is None  # another thread runs: no fork
    finally:
        stop.set()
        other.join()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert start_catalog_process(settings) is None  # only on Linux


async def test_a_stdio_server_serves_the_catalog_its_child_loaded(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        expected = {d["name"]: d["inputSchema"] for d in kit.tool_definitions()}
    before = len(sandbox.requests_for("list_techniques"))
    env = sandbox_env(sandbox, FLORA_LOG_LEVEL="INFO", FLORA_MAX_WAIT="20")
    async with stdio_session([], env) as (session, errlog):
        tools = (await session.list_tools()).tools
        errlog.seek(0)
        log = errlog.read()
    assert {t.name: t.input_schema for t in tools} == expected
    assert f"{len(expected) - 3} techniques loaded by the catalog process (pid " in log
    assert len(sandbox.requests_for("list_techniques")) == before + 1  # listed by the child, not again here


async def test_a_refusal_in_the_child_is_one_line_and_flora_is_not_asked_again(sandbox: Sandbox) -> None:
    wrong = "sk_live_WRONG0key0for0this0child"
    done = await anyio.to_thread.run_sync(lambda: run_cli(env=server_env(
        FLORA_API_KEY=wrong, FLORA_BASE_URL=sandbox.base_url, FLORA_LOG_LEVEL="INFO")))
    assert done.returncode == 1 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("flora-mcp: cannot load the FLORA technique catalog") and "Check FLORA_API_KEY" in last
    assert wrong not in done.stderr
    assert len(sandbox.requests_for("list_techniques")) == 1  # the child's; the server did not ask again


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # ended, not yet reaped by init


async def test_a_server_killed_while_its_child_loads_leaves_no_child_behind() -> None:
    async with serve_sandbox(sandbox_config(latency=30.0)) as slow:  # every answer 30 s away
        env = server_env(FLORA_API_KEY=TEST_KEY, FLORA_BASE_URL=slow.base_url)
        proc = subprocess.Popen([sys.executable, "-m", "flora_mcp"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            children: list[int] = []
            for _ in range(400):  # until the child asks for the first page; at most 20 s
                children = _children_of(proc.pid)
                if children and slow.requests_for("list_techniques"):
                    break
                await anyio.sleep(0.05)
            assert len(children) == 1
        finally:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                assert stream is not None
                stream.close()
        for _ in range(400):
            if _gone(children[0]):
                break
            await anyio.sleep(0.05)
        assert _gone(children[0])  # the kernel ended it with its parent, 30 s before its answer
