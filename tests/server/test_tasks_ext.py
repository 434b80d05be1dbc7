"""Tasks in both shapes, through the SDK's own client: the 2026-07-28 `io.modelcontextprotocol/tasks` extension (a
client extension that claims `resultType: "task"`), the 2025-11-25 shape with a confirmation asked inside
`tasks/result`, cancellation that never stops a paid run, and a restarted server answering for its tasks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp.types as types
import pytest
from mcp import Client, MCPError, StdioServerParameters

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from flora_mcp.server.confirm import CONFIRM_INPUT
from flora_mcp.server.tasks_ext import TASK_AFTER, TASKS_EXTENSION, CreateTaskResult
from tests.support import mcp_client, polls, posts, sandbox_env, settings_for
from tests.tasks_client import CancelTask, TaskIdParams, Tasks, UpdateTask, UpdateTaskParams, get, until

YES = types.ElicitResult(action="accept", content={"confirm": True})
NO = types.ElicitResult(action="decline")
MISSING_CAPABILITY = -32021
INVALID_PARAMS = -32602


def person(answer: types.ElicitResult) -> Callable[..., Any]:
    async def callback(ctx: Any, params: Any) -> types.ElicitResult:
        return answer

    return callback


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)


# 2026-07-28, in memory ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_discovery_declares_the_extension_and_a_quick_call_is_no_task(sandbox: Sandbox, toolkit: Toolkit) -> None:
    async with mcp_client(toolkit, mode="auto", extensions=[Tasks()]) as client:
        assert client.protocol_version == "2026-07-28"
        assert TASKS_EXTENSION in (client.server_capabilities.extensions or {})
        quick = await client.session.call_tool("qr-code-generator", {"content": "quick"}, allow_claimed=True)
        assert isinstance(quick, types.CallToolResult) and data(quick)["status"] == "completed"


@pytest.mark.anyio
async def test_a_long_run_becomes_a_task_unasked_and_the_task_follows_it(sandbox: Sandbox, toolkit: Toolkit) -> None:
    sandbox.state.run_delay = TASK_AFTER + 1.5
    extension = Tasks()
    async with mcp_client(toolkit, mode="auto", extensions=[extension]) as client:
        created = await client.session.call_tool("qr-code-generator", {"content": "long"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "working"
        assert created.ttl_ms is not None and created.poll_interval_ms is not None
        assert created.poll_interval_ms >= toolkit.settings.poll_interval * 1000
        assert not sandbox.runs[0].finished  # answered while the run goes on
        done = await until(client.session, created.task_id, lambda s: s.status == "completed")
        result = types.CallToolResult.model_validate(done.result)
        assert data(result)["status"] == "completed" and data(result)["charged_cost"] == 0.01
        # The same through the client extension, transparently.
        again = await client.call_tool("qr-code-generator", {"content": "long, resolved"})
        assert data(again)["status"] == "completed"
        assert any(s.status == "working" and "%" in (s.status_message or "") for s in extension.seen)
    assert posts(sandbox) == 2


@pytest.mark.anyio
async def test_a_failed_run_is_a_completed_task_whose_result_says_so(sandbox: Sandbox, toolkit: Toolkit) -> None:
    sandbox.state.run_delay = TASK_AFTER + 0.5
    async with mcp_client(toolkit, mode="auto", extensions=[Tasks()]) as client:
        result = await client.call_tool("flaky-provider", {"prompt": "please fail"})
    assert result.is_error is True and data(result)["error_code"] == "provider_error" and data(result)["run_id"]


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "status", "runs"), [(YES, "completed", 1), (NO, "declined", 0)],
                         ids=["accepted", "declined"])
async def test_a_call_needing_confirmation_is_a_task_in_input_required(sandbox: Sandbox, answer: types.ElicitResult,
                                                                      status: str, runs: int) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0)) as kit, \
            mcp_client(kit, mode="auto", extensions=[Tasks()], elicitation_callback=person(answer)) as client:
        created = await client.session.call_tool("qr-code-generator", {"content": "ask me"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "input_required"
        snapshot = await get(client.session, created.task_id)
        form = (snapshot.input_requests or {})[CONFIRM_INPUT]
        assert form["method"] == "elicitation/create" and "It costs $0.01" in form["params"]["message"]
        assert form["params"]["requestedSchema"]["properties"]["confirm"]["type"] == "boolean"
        assert posts(sandbox) == 0
        await client.session.send_request(UpdateTask(params=UpdateTaskParams(
            task_id=created.task_id, input_responses={CONFIRM_INPUT: answer.model_dump(exclude_none=True)})),
            types.EmptyResult)
        done = await until(client.session, created.task_id, lambda s: s.status == "completed")
        assert data(types.CallToolResult.model_validate(done.result))["status"] == status
        with pytest.raises(MCPError) as twice:  # answered once: a second answer is refused
            await client.session.send_request(UpdateTask(params=UpdateTaskParams(
                task_id=created.task_id, input_responses={CONFIRM_INPUT: YES.model_dump()})), types.EmptyResult)
        assert twice.value.error.code == INVALID_PARAMS
        # And the client extension does the same rounds by itself.
        resolved = await client.call_tool("qr-code-generator", {"content": "ask me again"})
        assert data(resolved)["status"] == status
    assert posts(sandbox) == 2 * runs


@pytest.mark.anyio
async def test_cancelling_while_the_person_is_asked_sends_nothing(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0)) as kit, \
            mcp_client(kit, mode="auto", extensions=[Tasks()], elicitation_callback=person(YES)) as client:
        created = await client.session.call_tool("qr-code-generator", {"content": "never"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "input_required"
        await client.session.send_request(CancelTask(params=TaskIdParams(task_id=created.task_id)), types.EmptyResult)
        snapshot = await get(client.session, created.task_id)
        assert snapshot.status == "cancelled" and "nothing was charged" in (snapshot.status_message or "")
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_a_declaring_client_that_cannot_ask_gets_the_refusal_not_a_task(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0)) as kit, \
            mcp_client(kit, mode="auto", extensions=[Tasks()]) as client:
        result = await client.session.call_tool("qr-code-generator", {"content": "x"}, allow_claimed=True)
    assert isinstance(result, types.CallToolResult) and data(result)["error_code"] == "confirmation_unavailable"
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_cancelling_a_running_task_stops_waiting_but_not_the_paid_run(sandbox: Sandbox,
                                                                           toolkit: Toolkit) -> None:
    sandbox.state.run_delay = TASK_AFTER + 2.0
    async with mcp_client(toolkit, mode="auto", extensions=[Tasks()]) as client:
        created = await client.session.call_tool("qr-code-generator", {"content": "cancel me"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult)
        await client.session.send_request(CancelTask(params=TaskIdParams(task_id=created.task_id)), types.EmptyResult)
        snapshot = await get(client.session, created.task_id)
        assert snapshot.status == "cancelled" and "goes on and is charged" in (snapshot.status_message or "")
        with pytest.raises(MCPError) as again:
            await client.session.send_request(CancelTask(params=TaskIdParams(task_id=created.task_id)),
                                              types.EmptyResult)
        assert again.value.error.code == INVALID_PARAMS
        polled = polls(sandbox)
        with anyio.fail_after(10):
            while sandbox.runs[0].status != "completed":
                await anyio.sleep(0.05)
        assert polls(sandbox) == polled  # nobody waits for it any more
        picked = await client.call_tool("flora_get_run", {"run_id": sandbox.runs[0].run_id})
        assert data(picked)["status"] == "completed"
    assert posts(sandbox) == 1


@pytest.mark.anyio
async def test_tasks_requests_need_the_extension_and_a_known_task(sandbox: Sandbox, toolkit: Toolkit) -> None:
    async with mcp_client(toolkit, mode="auto") as plain:
        with pytest.raises(MCPError) as undeclared:
            await get(plain.session, "anything")
        assert undeclared.value.error.code == MISSING_CAPABILITY
    async with mcp_client(toolkit, mode="auto", extensions=[Tasks()]) as client:
        with pytest.raises(MCPError) as unknown:
            await get(client.session, "no-such-task")
        assert unknown.value.error.code == INVALID_PARAMS


# 2025-11-25 with a confirmation, over stdio ---------------------------------------------------------------------
# The SDK's client validates a tools/call answer as a CallToolResult, so it cannot make a task-augmented call: this
# peer speaks JSON-RPC to `python -m flora_mcp`, as VS Code does, and answers the server's elicitation/create.


class Peer:
    """A 2025-11-25 JSON-RPC client over a flora-mcp process's stdio that answers `elicitation/create` as told."""

    def __init__(self, process: anyio.abc.Process, answer: types.ElicitResult | None) -> None:
        self.process = process
        self.answer = answer
        self.asked: list[dict[str, Any]] = []
        self.buffer = b""
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response to one request (its `result`, or `{"error": ...}`), answering the server meanwhile."""
        self.next_id += 1
        await self.send({"id": self.next_id, "method": method, "params": params or {}})
        assert self.process.stdout is not None
        with anyio.fail_after(30):
            while True:
                while b"\n" not in self.buffer:
                    self.buffer += await self.process.stdout.receive()
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("method") == "elicitation/create" and "id" in message:
                    self.asked.append(message["params"])
                    answer = self.answer.model_dump(exclude_none=True) if self.answer else None
                    await self.send({"id": message["id"], "result": answer} if answer else
                                    {"id": message["id"], "error": {"code": -32601, "message": "no elicitation"}})
                elif message.get("id") == self.next_id and "method" not in message:
                    return message.get("result") or {"error": message["error"]}


@asynccontextmanager
async def peer(box: Sandbox, answer: types.ElicitResult | None, *, journal: str = ":memory:",
               capabilities: dict[str, Any] | None = None, **env: str) -> AsyncIterator[Peer]:
    environment = sandbox_env(box, FLORA_JOURNAL=journal, FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING", **env)
    async with await anyio.open_process([sys.executable, "-m", "flora_mcp"], env=environment) as process:
        client = Peer(process, answer)
        hello = await client.request("initialize", {
            "protocolVersion": "2025-11-25", "clientInfo": {"name": "tasks-ext-test", "version": "1"},
            "capabilities": {"elicitation": {"form": {}}} if capabilities is None else capabilities})
        assert "tasks" in hello["capabilities"]
        await client.send({"method": "notifications/initialized"})
        try:
            yield client
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.fail_after(10):
                await process.wait()


def as_task(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": "qr-code-generator", "arguments": arguments, "task": {"ttl": 60_000}}


async def legacy_state(client: Peer, task_id: str, status: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while (state := await client.request("tasks/get", {"taskId": task_id}))["status"] != status:
            await anyio.sleep(0.02)
    return state


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "status", "runs"), [(YES, "completed", 1), (NO, "declined", 0)],
                         ids=["accepted", "declined"])
async def test_a_2025_task_asks_inside_tasks_result(sandbox: Sandbox, answer: types.ElicitResult, status: str,
                                                    runs: int) -> None:
    async with peer(sandbox, answer, FLORA_CONFIRM_ABOVE="0") as client:
        created = (await client.request("tools/call", as_task({"content": "legacy ask"})))["task"]
        state = await legacy_state(client, created["taskId"], "input_required")
        assert state["statusMessage"] == "Run QR Code Generator for $0.01?" and posts(sandbox) == 0
        result = await client.request("tasks/result", {"taskId": created["taskId"]})
        assert result["structuredContent"]["status"] == status
        assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["taskId"]}
        [form] = client.asked
        assert "It costs $0.01" in form["message"] and form["requestedSchema"]["required"] == ["confirm"]
        assert form["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["taskId"]}
    assert posts(sandbox) == runs


@pytest.mark.anyio
async def test_a_2025_task_whose_client_cannot_ask_is_refused_and_sends_nothing(sandbox: Sandbox) -> None:
    async with peer(sandbox, None, capabilities={}, FLORA_CONFIRM_ABOVE="0") as client:
        created = (await client.request("tools/call", as_task({"content": "nobody"})))["task"]
        result = await client.request("tasks/result", {"taskId": created["taskId"]})
        assert result["isError"] is True and result["structuredContent"]["error_code"] == "confirmation_unavailable"
        assert client.asked == []
    assert posts(sandbox) == 0


# A restarted server answers for its tasks ------------------------------------------------------------------------


@asynccontextmanager
async def stdio_server(box: Sandbox, journal: Path, mode: str, **options: Any) -> AsyncIterator[Client]:
    env = sandbox_env(box, FLORA_JOURNAL=str(journal), FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING")
    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=env)
    async with Client(params, mode=mode, **options) as client:
        yield client


@pytest.mark.anyio
async def test_a_restarted_server_answers_for_a_2026_task_and_follows_its_run(sandbox: Sandbox,
                                                                             tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite3"
    sandbox.state.run_delay = TASK_AFTER + 4.0
    async with stdio_server(sandbox, journal, "auto", extensions=[Tasks()]) as first:
        created = await first.session.call_tool("qr-code-generator", {"content": "survive"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "working"
        quick_run = await first.call_tool("flora_spend", {})
        assert quick_run.is_error is False
    assert len(sandbox.runs) == 1 and not sandbox.runs[0].finished  # the server left, the run goes on
    async with stdio_server(sandbox, journal, "auto", extensions=[Tasks()]) as second:
        snapshot = await get(second.session, created.task_id)
        assert snapshot.status == "working" and snapshot.created_at == created.created_at
        done = await until(second.session, created.task_id, lambda s: s.status == "completed")
        result = types.CallToolResult.model_validate(done.result)
        assert data(result)["status"] == "completed" and data(result)["run_id"] == sandbox.runs[0].run_id
    async with stdio_server(sandbox, journal, "auto", extensions=[Tasks()]) as third:
        kept = await get(third.session, created.task_id)  # finished before this start: its result is kept
        assert kept.status == "completed" and kept.result == done.result
    assert posts(sandbox) == 1


@pytest.mark.anyio
async def test_a_restarted_server_answers_for_a_2025_task(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = str(tmp_path / "runs.sqlite3")
    async with peer(sandbox, None, journal=journal) as first:
        created = (await first.request("tools/call", as_task({"content": "legacy survive"})))["task"]
        finished = await first.request("tasks/result", {"taskId": created["taskId"]})
        assert finished["structuredContent"]["status"] == "completed"
    async with peer(sandbox, None, journal=journal) as second:
        assert (await second.request("tasks/get", {"taskId": created["taskId"]}))["status"] == "completed"
        again = await second.request("tasks/result", {"taskId": created["taskId"]})
        assert again["structuredContent"] == finished["structuredContent"]
    async with stdio_server(sandbox, tmp_path / "runs.sqlite3", "auto", extensions=[Tasks()]) as other_era:
        with pytest.raises(MCPError) as wrong_shape:  # a 2025-11-25 task is not a 2026 one
            await get(other_era.session, created["taskId"])
        assert wrong_shape.value.error.code == INVALID_PARAMS
    assert posts(sandbox) == 1


@pytest.mark.anyio
async def test_a_task_waiting_for_an_answer_at_a_restart_sent_nothing_and_says_so(sandbox: Sandbox,
                                                                                 tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite3"
    env = {"FLORA_CONFIRM_ABOVE": "0"}
    options: dict[str, Any] = {"extensions": [Tasks()], "elicitation_callback": person(YES)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=sandbox_env(
        sandbox, FLORA_JOURNAL=str(journal), FLORA_LOG_LEVEL="WARNING", **env))
    async with Client(params, **options) as first:
        created = await first.session.call_tool("qr-code-generator", {"content": "pending"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "input_required"
    async with Client(params, **options) as second:
        snapshot = await get(second.session, created.task_id)
    assert snapshot.status == "completed"
    result = types.CallToolResult.model_validate(snapshot.result)
    assert result.is_error is True and data(result)["error_code"] == "task_interrupted"
    assert "nothing was charged" in data(result)["error_message"]
    assert posts(sandbox) == 0
