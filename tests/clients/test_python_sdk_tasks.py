"""Tasks in both shapes through the `mcp` SDK's own `Client`, against a real `flora-mcp` process over stdio and
streamable HTTP: the 2025-11-25 tasks in `legacy` mode, the `io.modelcontextprotocol/tasks` extension in `auto` mode
(on stateless HTTP too); and a server SIGKILLed while a task runs, whose successor on the same journal answers
`tasks/get` for it.

mcp 2.3.0's client cannot make a 2025-11-25 task-augmented call: it validates any `tools/call` answer as a
`CallToolResult` (by method, whatever result type it is asked for). So `create_2025_task` sends that one request
through the session's own dispatcher, raw; every other request (`tasks/get`, `tasks/result` with the confirmation the
server asks inside it, answered by the client's elicitation callback) is the SDK's public API.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client

from flora_mcp.sandbox import Sandbox
from flora_mcp.server.tasks_ext import TASK_AFTER, CreateTaskResult
from tests.clients.flora_process import ERA, STATELESS, TRANSPORTS, FloraProcess, flora_mcp, journaled
from tests.support import posts
from tests.tasks_client import Tasks, get, until

pytestmark = pytest.mark.anyio

RELATED = "io.modelcontextprotocol/related-task"
YES = types.ElicitResult(action="accept", content={"confirm": True})


class Person:
    def __init__(self) -> None:
        self.shown: list[str] = []

    async def __call__(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.shown.append(params.message)
        return YES


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)


# 2025-11-25 ------------------------------------------------------------------------------------------------------


async def create_2025_task(client: Client, arguments: dict[str, Any]) -> types.Task:
    raw = await client.session._dispatcher.send_raw_request(  # see the module's docstring
        "tools/call", {"name": "qr-code-generator", "arguments": arguments, "task": {"ttl": 60_000}}, {})
    return types.CreateTaskResult.model_validate(raw).task


async def task_state(client: Client, task_id: str) -> types.GetTaskResult:
    return await client.session.send_request(
        types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id)), types.GetTaskResult)


async def task_result(client: Client, task_id: str) -> types.CallToolResult:
    return await client.session.send_request(
        types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id)), types.CallToolResult)


async def state_until(client: Client, task_id: str, status: str, message: str = "") -> types.GetTaskResult:
    with anyio.fail_after(30):  # a bound that cannot flake on a loaded machine, not a timing rule
        while (state := await task_state(client, task_id)).status != status or message not in (
                state.status_message or ""):
            await anyio.sleep(0.05)
    return state


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_2025_task_asks_the_person_inside_tasks_result(sandbox: Sandbox, transport: str) -> None:
    person = Person()
    async with flora_mcp(sandbox, transport, FLORA_CONFIRM_ABOVE="0") as server, \
            Client(server.target, mode="legacy", elicitation_callback=person) as client:  # type: ignore[arg-type]
        assert client.protocol_version == ERA["legacy"] and client.server_capabilities.tasks is not None
        task = await create_2025_task(client, {"content": f"2025 task over {transport}"})
        await state_until(client, task.task_id, "input_required")
        assert posts(sandbox) == 0 and person.shown == []  # nothing sent, nobody asked before tasks/result
        result = await task_result(client, task.task_id)
        assert data(result)["status"] == "completed" and result.meta == {RELATED: {"taskId": task.task_id}}
        assert (await task_state(client, task.task_id)).status == "completed"
    [asked] = person.shown
    assert "It costs $0.01" in asked
    assert posts(sandbox) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_2025_task_is_answered_by_the_server_started_after_a_kill(sandbox: Sandbox, transport: str,
                                                                         tmp_path: Any) -> None:
    journal = str(tmp_path / "journal.sqlite3")
    sandbox.state.run_delay = 3.0
    async with flora_mcp(sandbox, transport, journal=journal) as first:
        task = await killed_under_a_2025_task(first)
    assert len(sandbox.runs) == 1 and not sandbox.runs[0].finished  # the server died, the paid run goes on
    async with flora_mcp(sandbox, transport, journal=journal) as second, \
            Client(second.target, mode="legacy") as client:  # type: ignore[arg-type]
        assert (await task_state(client, task.task_id)).created_at == task.created_at
        result = await task_result(client, task.task_id)  # waits for the run the dead process submitted
        assert data(result)["status"] == "completed" and data(result)["run_id"] == sandbox.runs[0].run_id
        assert (await task_state(client, task.task_id)).status == "completed"
    assert posts(sandbox) == 1


async def killed_under_a_2025_task(server: FloraProcess) -> types.Task:
    """A task created on `server`, which is SIGKILLed once the task follows its submitted run."""
    async with anyio.create_task_group() as tg, \
            Client(server.target, mode="legacy") as client:  # type: ignore[arg-type]
        task = await create_2025_task(client, {"content": "outlive the server"})
        await journaled(server.marker, task.task_id)
        await server.kill()
        tg.cancel_scope.cancel()  # the client's own streams end with the process
    return task


# 2026-07-28: the tasks extension ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", [*TRANSPORTS, STATELESS])
async def test_the_tasks_extension_confirms_then_follows_a_long_run(sandbox: Sandbox, transport: str) -> None:
    sandbox.state.run_delay = TASK_AFTER + 1.0
    extension, person = Tasks(), Person()
    async with flora_mcp(sandbox, transport, FLORA_CONFIRM_ABOVE="0") as server, \
            Client(server.target, mode="auto", extensions=[extension],  # type: ignore[arg-type]
                   elicitation_callback=person) as client:
        assert client.protocol_version == ERA["auto"]
        # The client extension takes the task, answers its question (tasks/update) and polls tasks/get to the end.
        result = await client.call_tool("qr-code-generator", {"content": "ask, then wait"})
    assert data(result)["status"] == "completed" and data(result)["charged_cost"] == 0.01
    statuses = [s.status for s in extension.seen]
    assert statuses[0] == "input_required" and "working" in statuses and statuses[-1] == "completed"
    assert len(person.shown) == 1 and posts(sandbox) == 1


@pytest.mark.parametrize("transport", [*TRANSPORTS, STATELESS])
async def test_a_2026_task_is_answered_by_the_server_started_after_a_kill(sandbox: Sandbox, transport: str,
                                                                         tmp_path: Any) -> None:
    journal = str(tmp_path / "journal.sqlite3")
    sandbox.state.run_delay = TASK_AFTER + 3.0
    async with flora_mcp(sandbox, transport, journal=journal) as first:
        created = await killed_under_a_2026_task(first)
    assert len(sandbox.runs) == 1 and not sandbox.runs[0].finished
    async with flora_mcp(sandbox, transport, journal=journal) as second, \
            Client(second.target, mode="auto", extensions=[Tasks()]) as client:  # type: ignore[arg-type]
        snapshot = await get(client.session, created.task_id)
        assert snapshot.created_at == created.created_at and snapshot.status in ("working", "completed")
        done = await until(client.session, created.task_id, lambda s: s.status == "completed")
        result = types.CallToolResult.model_validate(done.result)
        assert data(result)["status"] == "completed" and data(result)["run_id"] == sandbox.runs[0].run_id
    assert posts(sandbox) == 1


async def killed_under_a_2026_task(server: FloraProcess) -> CreateTaskResult:
    async with anyio.create_task_group() as tg, \
            Client(server.target, mode="auto", extensions=[Tasks()]) as client:  # type: ignore[arg-type]
        created = await client.session.call_tool("qr-code-generator", {"content": "outlive the server"},
                                                 allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "working"
        await journaled(server.marker, created.task_id)
        await server.kill()
        tg.cancel_scope.cancel()
    return created


async def test_a_task_killed_before_it_knew_its_run_says_so_and_the_run_is_found(sandbox: Sandbox,
                                                                                tmp_path: Any) -> None:
    """FLORA made the run, its answer never reached the server: the successor does not pretend to know the task's
    outcome, says the run may exist and be charged, and flora_list_runs finds that run (nothing paid is lost)."""
    journal = str(tmp_path / "journal.sqlite3")
    sandbox.faults.inject(route="create_technique_run", kind="stall", seconds=60.0, when="after")
    async with flora_mcp(sandbox, "stdio", journal=journal) as first, anyio.create_task_group() as tg, \
            Client(first.target, mode="auto", extensions=[Tasks()]) as client:  # type: ignore[arg-type]
        created = await client.session.call_tool("qr-code-generator", {"content": "answer lost"}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "working"
        with anyio.fail_after(30):
            while not sandbox.runs:
                await anyio.sleep(0.02)
        await first.kill()
        tg.cancel_scope.cancel()
    sandbox.faults.clear()
    async with flora_mcp(sandbox, "stdio", journal=journal) as second, \
            Client(second.target, mode="auto", extensions=[Tasks()]) as client:  # type: ignore[arg-type]
        ended = await until(client.session, created.task_id, lambda s: s.status in ("completed", "failed"))
        result = types.CallToolResult.model_validate(ended.result)
        assert result.is_error is True and data(result)["error_code"] == "task_interrupted"
        assert "may exist and be charged" in data(result)["error_message"]
        assert "flora_list_runs" in data(result)["next_step"]
        listed = data(await client.call_tool("flora_list_runs", {}))
        assert [run["run_id"] for run in listed["data"]["runs"]] == [sandbox.runs[0].run_id]
    assert posts(sandbox) == 1  # looked up, never sent again
