"""The 2026-07-28 tasks extension, `io.modelcontextprotocol/tasks`, for clients that declare it on a request.

Declared in `server/discover` (`capabilities.extensions`). A technique call (or `flora_run_technique`) from a request
that declared the extension runs in the background (task_store.py); if it ends within TASK_AFTER seconds its plain
`CallToolResult` is the answer, else the answer is a task (`resultType: "task"`), returned unasked as the extension
allows, with `pollIntervalMs` from the run's progress rate. A call that needs the person's confirmation becomes a task
in `input_required` at once, its `inputRequests` holding the form; `tasks/update` brings the answer. `tasks/get` shows
the task (its `result` once completed: the `CallToolResult`, `isError` for a failed run); `tasks/cancel` stops
waiting, never the paid run, and says so. A request that did not declare the extension gets no task, and its
`tasks/*` requests -32021; an unknown task -32602.

mcp 2.3.0 ships none of this (its docs describe a `Tasks()` helper not in the wheel): the wire models are below, after
the extension's own schemas (`@modelcontextprotocol/ext-tasks` 0.2.2, `core/v2`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.server.confirm import CONFIRM_INPUT, answer_of, can_ask, form_schema
from flora_mcp.server.roots import roots_of
from flora_mcp.server.task_entry import TaskEntry
from flora_mcp.server.task_store import TaskStore
from flora_mcp.server.tasks import task_capable

__all__ = ["SHAPE", "TASK_AFTER", "TASKS_EXTENSION", "declared", "install_tasks_extension"]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
SHAPE = "2026-07-28"
TASK_AFTER = 2.0
"""Seconds a declaring request waits for its call before the answer becomes a task."""

Resolver = Callable[[ServerRequestContext[Any]], Awaitable[Toolkit]]


class _TaskFields(types.Result):
    task_id: str
    status: Literal["working", "input_required", "completed", "failed", "cancelled"]
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class CreateTaskResult(_TaskFields):
    """The answer to a `tools/call` that became a task."""

    result_type: Literal["task"] = "task"


class GetTaskResult(_TaskFields):
    """`tasks/get`: the task, with its input requests, result or error as its status calls for."""

    result_type: Literal["complete"] = "complete"
    input_requests: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TaskIdParams(types.RequestParams):
    task_id: str


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, Any]


def declared(ctx: ServerRequestContext[Any]) -> bool:
    """Whether this request's client declared the tasks extension (2026-07-28 capabilities are per request)."""
    caps = ctx.session.client_capabilities
    return bool(ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and caps is not None and caps.extensions
                and TASKS_EXTENSION in caps.extensions)


def _fields(entry: TaskEntry) -> dict[str, Any]:
    # A failed call is a completed task whose result says so (isError): the agent gets the run id and next step.
    status = "completed" if entry.status == "failed" and entry.result is not None else entry.status
    return {"task_id": entry.task_id, "status": status, "status_message": entry.message,
            "created_at": entry.created_at, "last_updated_at": entry.updated_at, "ttl_ms": entry.ttl_ms,
            "poll_interval_ms": entry.poll_interval_ms()}


def _detailed(entry: TaskEntry) -> GetTaskResult:
    answer = GetTaskResult(**_fields(entry))
    if entry.status == "input_required" and entry.asking is not None:
        form = types.ElicitRequestFormParams(message=entry.asking.message(), requested_schema=form_schema(entry.asking))
        answer.input_requests = {CONFIRM_INPUT: types.ElicitRequest(params=form).model_dump(
            by_alias=True, mode="json", exclude_none=True)}
    elif answer.status == "completed" and entry.result is not None:
        answer.result = entry.result.model_dump(by_alias=True, mode="json", exclude_none=True)
    elif answer.status == "failed":
        answer.error = {"code": -32603, "message": entry.message}
    return answer


def install_tasks_extension(server: Server[Any], resolve: Resolver, store: TaskStore) -> Server[Any]:
    """Give `server` the tasks extension on `store` (whose lifespan the caller runs): declared in discovery, a
    middleware that turns long or confirming technique calls into tasks, and `tasks/get|update|cancel`."""
    server.extensions[TASKS_EXTENSION] = {}

    async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call" or not declared(ctx) or not store.running:
            return await call_next(ctx)
        params: Mapping[str, Any] = ctx.params or {}
        try:
            toolkit = await resolve(ctx)
            await toolkit.wait_for_catalog()
        except Exception:
            return await call_next(ctx)  # no toolkit or catalog: the plain call's result says what went wrong
        request = types.CallToolRequestParams.model_validate(params, by_name=False)
        if not task_capable(toolkit, request.name):
            return await call_next(ctx)
        entry = store.start(toolkit, request.name, dict(request.arguments or {}), ttl_ms=None, shape=SHAPE,
                            can_ask=can_ask(ctx), roots=roots_of(ctx.session))
        with anyio.move_on_after(TASK_AFTER):
            while not entry.done.is_set() and entry.status != "input_required":
                await entry.next_change().wait()
        if entry.done.is_set() and entry.result is not None:
            return entry.result  # quick: the plain result, and no task to poll
        return CreateTaskResult(**_fields(entry))

    async def found(ctx: ServerRequestContext[Any], task_id: str) -> tuple[Toolkit, TaskEntry]:
        if not declared(ctx):
            raise MCPError(MISSING_REQUIRED_CLIENT_CAPABILITY, f"{ctx.method} needs the {TASKS_EXTENSION} extension",
                           data={"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}})
        toolkit = await resolve(ctx)
        return toolkit, await store.get(toolkit, task_id, SHAPE)

    async def get_task(ctx: ServerRequestContext[Any], params: TaskIdParams) -> GetTaskResult:
        _, entry = await found(ctx, params.task_id)
        return _detailed(entry)

    async def update_task(ctx: ServerRequestContext[Any], params: UpdateTaskParams) -> types.EmptyResult:
        _, entry = await found(ctx, params.task_id)
        response = params.input_responses.get(CONFIRM_INPUT)
        if response is None:
            raise MCPError(-32602, f"inputResponses has no {CONFIRM_INPUT!r}: the task asked for it")
        entry.answer(answer_of(types.ElicitResult.model_validate(response)))
        return types.EmptyResult()

    async def cancel_task(ctx: ServerRequestContext[Any], params: TaskIdParams) -> types.EmptyResult:
        toolkit, _ = await found(ctx, params.task_id)
        await store.cancel(toolkit, params.task_id, SHAPE)
        return types.EmptyResult()

    server.middleware.append(middleware)
    # 2025-11-25's tasks/get and tasks/cancel have the same names: each era's requests reach their own handler.
    server.add_request_handler("tasks/update", UpdateTaskParams, update_task)
    return _share(server, get_task, cancel_task)


def _share(server: Server[Any], get_task: Callable[..., Awaitable[Any]],
           cancel_task: Callable[..., Awaitable[Any]]) -> Server[Any]:
    """`tasks/get` and `tasks/cancel` answer 2026 requests here and hand 2025-11-25 ones to their own handlers."""
    for method, modern, params_type in (("tasks/get", get_task, TaskIdParams),
                                        ("tasks/cancel", cancel_task, TaskIdParams)):
        legacy = server.get_request_handler(method)
        server.add_request_handler(method, params_type, _by_era(modern, legacy))
    return server


def _by_era(modern: Callable[..., Awaitable[Any]], legacy: Any) -> Callable[..., Awaitable[Any]]:
    async def handler(ctx: ServerRequestContext[Any], params: types.RequestParams) -> Any:
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or legacy is None:
            return await modern(ctx, params)
        # The 2025-11-25 handler, with the params it was registered for.
        return await legacy.handler(ctx, legacy.params_type.model_validate(params.model_dump(by_alias=True)))

    return handler
