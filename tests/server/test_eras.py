"""Both protocol eras, one behaviour: a 2025-11-25 client (handshake, sessions) and a 2026-07-28 client (stateless,
`server/discover`) see the same tools, results, resources and identity, over stdio, streamable HTTP (stateful and
stateless) and legacy SSE; 2026 lists carry cache hints; a 2026 HTTP call does not rebuild the tool list; tool-list
changes reach both eras over stdio.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx
import mcp.types as types
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.sse import sse_client

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from flora_mcp.server import identity
from tests.hosted.hosted_support import MCP_HEADERS, hosted
from tests.support import TEST_KEY, mcp_client, sandbox_config, sandbox_env, settings_for

MODES = ("legacy", "auto")
ERA = {"legacy": "2025-11-25", "auto": "2026-07-28"}
TRANSPORTS = ("stdio", "http", "http-stateless", "sse")

_RUN_ID = re.compile(r"run_[0-9a-f]+")
_URL = re.compile(r"http://127\.0\.0\.1:\d+/\S*")
_KEY = re.compile(r"flora-mcp-[0-9a-f]{32}")
_TIMES = frozenset({"created_at", "updated_at"})
_TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")  # as flora_list_runs' text says a run's time


def normalized(value: Any) -> Any:
    """`value` with what differs between two servers of the same sandbox (run ids, ports, keys, times) masked."""
    if isinstance(value, dict):
        return {k: "<time>" if k in _TIMES else normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, str):
        return _TIME_TEXT.sub("<time>", _KEY.sub("<key>", _RUN_ID.sub("<run>", _URL.sub("<url>", value))))
    return value


def dumped(model: Any) -> Any:
    return normalized(model.model_dump(mode="json", by_alias=True, exclude_none=True))


def call_view(result: types.CallToolResult) -> dict[str, Any]:
    """What an agent gets from a call, minus nothing but the masked ids."""
    return normalized({"isError": result.is_error, "structured": result.structured_content,
                       "content": [b.model_dump(mode="json", by_alias=True, exclude_none=True)
                                   for b in result.content]})


async def scenario(client: Client) -> dict[str, Any]:
    """The same requests, in the same order, through any client: what each answered, ready to compare."""
    seen: dict[str, Any] = {"server": dumped(client.server_info), "instructions": client.session.instructions}
    tools = (await client.list_tools()).tools
    # The one difference by design: 2025-11-25 marks task support on tools, 2026-07-28 has the tasks extension.
    seen["tools"] = [{k: v for k, v in dumped(t).items() if k != "execution"} for t in tools]
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    made = await client.call_tool("qr-code-generator", {"content": "the same in both eras"},
                                  progress_callback=on_progress)
    seen["call"] = call_view(made)
    # Progress arrives in both eras, strictly rising, up to 100; how many beats depends on timing, not on the era.
    seen["progress"] = (bool(progress), progress == sorted(set(progress)), progress[-1:] == [100.0])
    run_id = (made.structured_content or {})["run_id"]
    seen["invalid"] = call_view(await client.call_tool("cctv-cam", {"input_image": "not a url", "extra": 1}))
    seen["unknown"] = call_view(await client.call_tool("no-such-tool", {}))
    seen["failed"] = call_view(await client.call_tool("flaky-provider", {"prompt": "please fail"}))
    seen["get_run"] = call_view(await client.call_tool("flora_get_run", {"run_id": run_id}))
    seen["list_runs"] = call_view(await client.call_tool("flora_list_runs", {}))
    seen["spend"] = call_view(await client.call_tool("flora_spend", {}))
    seen["resources"] = [dumped(r) for r in (await client.list_resources()).resources]
    seen["templates"] = [dumped(r) for r in (await client.list_resource_templates()).resource_templates]
    run = (await client.read_resource(f"flora://runs/{run_id}")).contents[0]
    seen["run_resource"] = normalized(json.loads(run.text))  # type: ignore[union-attr]
    spend = (await client.read_resource("flora://spend")).contents[0]
    seen["spend_resource"] = normalized(json.loads(spend.text))  # type: ignore[union-attr]
    seen["missing"] = []
    for uri in ("flora://runs/run_0000", "flora://elsewhere"):
        with pytest.raises(MCPError) as missing:
            await client.read_resource(uri)
        seen["missing"].append((missing.value.error.code, missing.value.error.data))
    return seen


def connect(transport: str, box: Sandbox, mode: str) -> AbstractAsyncContextManager[Client]:
    """A client of a fresh flora-mcp (its own session spend) in `mode`, over `transport`."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[Client]:
        if transport == "stdio":
            env = sandbox_env(box, FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING")
            params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=env)
            async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
                yield client
            return
        async with hosted(settings_for(box), stateless=transport == "http-stateless") as server:
            target: Any = sse_client(f"{server.url}/sse") if transport == "sse" else f"{server.url}/mcp"
            async with Client(target, mode=mode) as client:  # type: ignore[arg-type]
                yield client

    return opened()


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(run_delay=0.3)) as sandbox:
        yield sandbox


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_both_eras_see_the_same_tools_results_and_resources(box: Sandbox, transport: str) -> None:
    answers: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        async with connect(transport, box, mode) as client:
            assert client.protocol_version == ERA[mode]
            answers[mode] = await scenario(client)
    legacy, modern = answers["legacy"], answers["auto"]
    assert legacy["call"]["structured"]["status"] == "completed"  # a real run, not two identical failures
    assert legacy["failed"]["structured"]["status"] == "failed"
    assert legacy["progress"] == (True, True, True)
    assert {r["uri"] for r in legacy["resources"]} == {"flora://spend", "flora://runs/<run>"}
    assert legacy["spend_resource"]["session_spend"] > 0
    assert legacy["missing"] == [(-32602, {"uri": "flora://runs/run_0000"}), (-32602, {"uri": "flora://elsewhere"})]
    for key in legacy:
        assert modern[key] == legacy[key], (key, json.dumps(modern[key])[:3000], json.dumps(legacy[key])[:3000])


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_discovery_and_the_handshake_carry_the_whole_identity(toolkit: Toolkit, mode: str) -> None:
    async with mcp_client(toolkit, mode=mode) as client:
        info = client.server_info
        assert info is not None and info.name == "flora-mcp" and info.title == "FLORA"
        assert info.description == identity.DESCRIPTION and info.website_url == "https://flora.ai"
        assert info.icons and {i.mime_type for i in info.icons} == {"image/png", "image/svg+xml"}
        assert all(i.src.startswith("data:") for i in info.icons)  # shown without fetching anything
        assert client.session.instructions == identity.INSTRUCTIONS


DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {}}}}


@pytest.mark.anyio
async def test_server_discover_over_http_is_public_and_cacheable(sandbox: Sandbox) -> None:
    async with hosted(settings_for(sandbox), stateless=True) as server, httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(f"{server.url}/mcp", json=DISCOVER, headers={
            **MCP_HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"})
    assert answer.status_code == 200, answer.text
    body = answer.json() if answer.headers["content-type"].startswith("application/json") else json.loads(
        next(line[5:] for line in answer.text.splitlines() if line.startswith("data:")))
    result = body["result"]
    assert result["ttlMs"] == identity.DISCOVER_TTL_MS and result["cacheScope"] == "public"
    assert result["supportedVersions"] == ["2026-07-28"] and result["instructions"] == identity.INSTRUCTIONS
    stamp = result["_meta"]["io.modelcontextprotocol/serverInfo"]
    assert stamp["websiteUrl"] == "https://flora.ai" and len(stamp["icons"]) == 2
    assert result["capabilities"]["tools"]["listChanged"] is True


@pytest.mark.anyio
async def test_2026_lists_carry_cache_hints(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, catalog_refresh=30)) as kit, mcp_client(kit, mode="auto") as client:
        tools = await client.session.list_tools()
        assert (tools.ttl_ms, tools.cache_scope) == (30_000, "private")  # never fresher than the next re-list
        resources = await client.session.list_resources()
        assert (resources.ttl_ms, resources.cache_scope) == (0, "private")  # runs change with every call
        templates = await client.session.list_resource_templates()
        assert (templates.ttl_ms, templates.cache_scope) == (identity.TEMPLATES_TTL_MS, "public")
    async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit, mode="auto") as client:
        assert (await client.session.list_tools()).ttl_ms == identity.TOOLS_LIST_TTL_MS


@pytest.mark.anyio
async def test_a_2025_session_gets_no_cache_hints_on_the_wire(sandbox: Sandbox) -> None:
    env = sandbox_env(sandbox, FLORA_LOG_LEVEL="WARNING")
    async with await anyio.open_process([sys.executable, "-m", "flora_mcp"], env=env) as process:
        assert process.stdin is not None and process.stdout is not None
        lines = b""

        async def request(message: dict[str, Any]) -> dict[str, Any]:
            nonlocal lines
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
            if "id" not in message:
                return {}
            with anyio.fail_after(30):
                while True:
                    while b"\n" not in lines:
                        lines += await process.stdout.receive()
                    line, lines = lines.split(b"\n", 1)
                    answer = json.loads(line)
                    if answer.get("id") == message["id"]:
                        return dict(answer["result"])

        hello = await request({"id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
        assert hello["serverInfo"]["websiteUrl"] == "https://flora.ai"
        await request({"method": "notifications/initialized"})
        listed = await request({"id": 2, "method": "tools/list"})
        assert listed["tools"] and "ttlMs" not in listed and "cacheScope" not in listed
        await process.stdin.aclose()
        with anyio.fail_after(10):
            await process.wait()


@pytest.mark.anyio
@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_a_2026_http_call_does_not_rebuild_the_tool_list(sandbox: Sandbox, stateless: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async with hosted(settings_for(sandbox), stateless=stateless) as server:
        shared = server.pool.shared
        assert shared is not None
        listings: list[int] = []
        original = shared.wait_for_tool_definitions

        async def counted() -> list[dict[str, Any]]:
            listings.append(1)
            return await original()

        monkeypatch.setattr(shared, "wait_for_tool_definitions", counted)
        async with Client(f"{server.url}/mcp") as client:
            assert client.protocol_version == "2026-07-28"
            await client.list_tools()  # the client lists once, to check results against the output schemas
            assert listings == [1]
            for text in ("one", "two", "three"):
                result = await client.call_tool("qr-code-generator", {"content": text})
                assert (result.structured_content or {})["status"] == "completed"
            assert listings == [1]  # three calls with arguments, and the server never listed the tools again


# Tool-list changes, both eras, over stdio ------------------------------------------------------------------------


@pytest.fixture
async def narrowed() -> AsyncIterator[Sandbox]:
    """A sandbox whose key sees two techniques until the test widens it."""
    keys = {TEST_KEY: Account(techniques=["cctv-cam", "qr-code-generator"])}
    async with serve_sandbox(sandbox_config(keys=keys)) as sandbox:
        yield sandbox


def refreshing(box: Sandbox) -> StdioServerParameters:
    env = sandbox_env(box, FLORA_CATALOG_REFRESH="0.3", FLORA_LOG_LEVEL="WARNING")
    return StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=env)


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_tool_list_change_reaches_a_2025_client_as_list_changed(narrowed: Sandbox) -> None:
    received: list[Any] = []

    async def on_message(message: Any) -> None:
        received.append(message)

    async with Client(refreshing(narrowed), mode="legacy", message_handler=on_message) as client:
        before = {t.name for t in (await client.list_tools()).tools}
        assert "color-grade-image" not in before
        narrowed.config.keys[TEST_KEY].techniques = None
        await until(lambda: any(isinstance(m, types.ToolListChangedNotification) for m in received))
        assert "color-grade-image" in {t.name for t in (await client.list_tools()).tools}


@pytest.mark.anyio
async def test_a_tool_list_change_reaches_a_2026_client_on_its_listen_stream(narrowed: Sandbox) -> None:
    from mcp.server.subscriptions import ToolsListChanged

    async with Client(refreshing(narrowed)) as client:
        assert client.protocol_version == "2026-07-28"
        before = {t.name for t in (await client.list_tools()).tools}
        assert "color-grade-image" not in before
        async with client.listen(tools_list_changed=True) as subscription:
            narrowed.config.keys[TEST_KEY].techniques = None
            with anyio.fail_after(20):
                event = await subscription.__anext__()
        assert isinstance(event, ToolsListChanged)
        after = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
        assert "color-grade-image" in after
