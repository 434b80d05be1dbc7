"""MCP tasks in the 2025-11-25 shape: offered to every session of that version, the lifecycle over a real stdio pipe.

The SDK's own client validates a `tools/call` answer as a `CallToolResult`, so it cannot make a task-augmented call;
the lifecycle tests speak JSON-RPC to `python -m flora_mcp` over stdio, as a client such as VS Code does.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import mcp.types as types
import pytest
from mcp.shared.exceptions import MCPError

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import StdioPeer, mcp_client, polls, sandbox_env, settings_for

RELATED = "io.modelcontextprotocol/related-task"


@pytest.mark.anyio
async def test_a_2025_11_25_client_is_offered_tasks_on_technique_tools(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit) as client:
        assert client.protocol_version == "2025-11-25"
        tasks = client.server_capabilities.tasks
        assert tasks is not None and tasks.list is not None and tasks.cancel is not None
        assert tasks.requests is not None and tasks.requests.tools is not None and tasks.requests.tools.call
        support = {t.name: t.execution.task_support if t.execution else None for t in (await client.list_tools()).tools}
        assert support["cctv-cam"] == support["qr-code-generator"] == "optional"
        assert support["flora_get_run"] is support["flora_spend"] is None
        plain = await client.call_tool("qr-code-generator", {"content": "no task asked"})
        assert plain.is_error is False and (plain.structured_content or {})["status"] == "completed"
        with pytest.raises(MCPError) as unknown:
            await client.session.send_request(
                types.GetTaskRequest(params=types.GetTaskRequestParams(task_id="nope")), types.GetTaskResult)
        assert unknown.value.code == -32602


@pytest.mark.anyio
async def test_a_2026_client_that_does_not_declare_the_extension_keeps_the_normal_behaviour(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit, mode="auto") as client:
        assert client.protocol_version != "2025-11-25"
        assert all(t.execution is None for t in (await client.list_tools()).tools)
        result = await client.call_tool("qr-code-generator", {"content": "modern"})
        assert (result.structured_content or {})["status"] == "completed"


@pytest.fixture
async def peer(sandbox: Sandbox) -> AsyncIterator[StdioPeer]:
    env = sandbox_env(sandbox, FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING")
    async with await anyio.open_process([sys.executable, "-m", "flora_mcp"], env=env) as process:
        client = StdioPeer(process)
        hello = await client.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                    "clientInfo": {"name": "tasks-test", "version": "1"}})
        assert hello["capabilities"]["tasks"]["requests"] == {"tools": {"call": {}}}
        await client.send({"method": "notifications/initialized"})
        try:
            yield client
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.fail_after(10):
                await process.wait()


def call_as_task(name: str, arguments: dict[str, Any], ttl: int = 60_000) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "task": {"ttl": ttl}}


@pytest.mark.anyio
async def test_a_task_follows_the_run_and_its_result_carries_the_task_id(sandbox: Sandbox, peer: StdioPeer) -> None:
    sandbox.state.run_delay = 3.0
    created = await peer.request("tools/call", call_as_task("qr-code-generator", {"content": "task me"}))
    assert not any(run.finished for run in sandbox.runs)  # answered while the run goes on, not after it
    task = created["task"]
    assert task["status"] == "working" and task["ttl"] == 60_000 and task["createdAt"].endswith("Z")
    assert "Do not call the tool again" in created["_meta"]["io.modelcontextprotocol/model-immediate-response"]
    with anyio.fail_after(30):  # a bound that cannot flake on a loaded machine, not a timing rule
        while "%" not in (state := await peer.request("tasks/get", {"taskId": task["taskId"]}))["statusMessage"]:
            await anyio.sleep(0.05)
    assert state["status"] == "working" and state["taskId"] == task["taskId"]

    result = await peer.request("tasks/result", {"taskId": task["taskId"]})  # blocks until the run ends
    assert result["isError"] is False and result["_meta"][RELATED] == {"taskId": task["taskId"]}
    assert result["structuredContent"]["status"] == "completed" and result["structuredContent"]["charged_cost"] == 0.01
    assert "resultType" not in result  # a 2025-11-25 CallToolResult, nothing from a later revision
    done = await peer.request("tasks/get", {"taskId": task["taskId"]})
    assert done["status"] == "completed" and "completed" in done["statusMessage"]
    assert [t["taskId"] for t in (await peer.request("tasks/list"))["tasks"]] == [task["taskId"]]
    again = await peer.request("tasks/cancel", {"taskId": task["taskId"]})
    assert again["error"]["code"] == -32602  # a finished task cannot be cancelled
    assert len(sandbox.runs) == 1


@pytest.mark.anyio
async def test_a_failed_run_fails_its_task_and_a_tool_without_task_support_is_refused(sandbox: Sandbox,
                                                                                     peer: StdioPeer) -> None:
    created = await peer.request("tools/call", call_as_task("flaky-provider", {"prompt": "please fail"}))
    result = await peer.request("tasks/result", {"taskId": created["task"]["taskId"]})
    assert result["isError"] is True and result["structuredContent"]["error_code"] == "provider_error"
    assert (await peer.request("tasks/get", {"taskId": created["task"]["taskId"]}))["status"] == "failed"
    refused = await peer.request("tools/call", call_as_task("flora_spend", {}))
    assert refused["error"]["code"] == -32601
    invalid = await peer.request("tools/call", call_as_task("qr-code-generator", {}))
    invalid_result = await peer.request("tasks/result", {"taskId": invalid["task"]["taskId"]})
    assert invalid_result["isError"] is True and invalid_result["structuredContent"]["status"] == "invalid"
    assert len(sandbox.runs) == 1


@pytest.mark.anyio
async def test_cancelling_a_task_stops_waiting_but_not_the_paid_run(sandbox: Sandbox, peer: StdioPeer) -> None:
    sandbox.state.run_delay = 2.0
    created = await peer.request("tools/call", call_as_task("qr-code-generator", {"content": "long"}))
    task_id = created["task"]["taskId"]
    with anyio.fail_after(30):  # a bound that cannot flake on a loaded machine, not a timing rule
        while not sandbox.runs:
            await anyio.sleep(0.02)
    cancelled = await peer.request("tasks/cancel", {"taskId": task_id})
    assert cancelled["status"] == "cancelled" and "goes on and is charged" in cancelled["statusMessage"]
    result = await peer.request("tasks/result", {"taskId": task_id})
    assert result["isError"] is True and result["structuredContent"]["error_code"] == "task_cancelled"
    assert "flora_list_runs" in result["structuredContent"]["next_step"]
    polled = polls(sandbox)
    with anyio.fail_after(30):  # a bound that cannot flake on a loaded machine, not a timing rule
        while sandbox.runs[0].status != "completed":
            await anyio.sleep(0.05)
    assert polls(sandbox) == polled
    assert (await peer.request("tasks/get", {"taskId": task_id}))["status"] == "cancelled"  # and it stays so
    # The journal kept the run: the agent picks it up by id.
    runs = (await peer.request("tools/call", {"name": "flora_list_runs", "arguments": {}}))["structuredContent"]
    run_id = runs["data"]["runs"][0]["run_id"]
    picked = await peer.request("tools/call", {"name": "flora_get_run", "arguments": {"run_id": run_id}})
    assert picked["structuredContent"]["status"] == "completed"
    assert len(sandbox.runs) == 1
