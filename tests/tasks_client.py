"""The client half of the `io.modelcontextprotocol/tasks` extension (mcp 2.3.0 ships none), for the tests that drive
it through the SDK's own `Client`: the `tasks/*` requests, and a `ClientExtension` that resolves a task by polling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import anyio
import mcp.types as types
from mcp.client import ClaimContext, ClientExtension, ClientRequestContext, ResultClaim

from flora_mcp.server.tasks_ext import TASKS_EXTENSION, CreateTaskResult, GetTaskResult


class TaskIdParams(types.RequestParams):
    task_id: str


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, Any]


class GetTask(types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class UpdateTask(types.Request[UpdateTaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param = "taskId"


class CancelTask(types.Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


class Tasks(ClientExtension):
    """The client half of the extension: declares it, and resolves a task by polling (answering input as asked)."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.seen: list[GetTaskResult] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self.resolve)]

    async def resolve(self, created: CreateTaskResult, context: ClaimContext) -> types.CallToolResult:
        session = context.session
        with anyio.fail_after(60):
            while True:
                snapshot = await get(session, created.task_id)
                self.seen.append(snapshot)
                if snapshot.status == "input_required":
                    responses = {}
                    for key, raw in (snapshot.input_requests or {}).items():
                        request = types.ElicitRequest.model_validate(raw)
                        answer = await session.dispatch_input_request(
                            ClientRequestContext(session=session, request_id=key), request)
                        responses[key] = answer.model_dump(by_alias=True, exclude_none=True)
                    await session.send_request(UpdateTask(params=UpdateTaskParams(
                        task_id=created.task_id, input_responses=responses)), types.EmptyResult)
                elif snapshot.status == "completed":
                    return types.CallToolResult.model_validate(snapshot.result)
                elif snapshot.status in ("failed", "cancelled"):
                    raise RuntimeError(f"task {snapshot.status}: {snapshot.status_message}")
                await anyio.sleep((snapshot.poll_interval_ms or 100) / 1000)


async def get(session: Any, task_id: str) -> GetTaskResult:
    result: GetTaskResult = await session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), GetTaskResult)
    return result


async def until(session: Any, task_id: str, done: Callable[[GetTaskResult], bool],
                timeout: float = 30) -> GetTaskResult:
    with anyio.fail_after(timeout):
        while not done(snapshot := await get(session, task_id)):
            await anyio.sleep(0.05)
    return snapshot
