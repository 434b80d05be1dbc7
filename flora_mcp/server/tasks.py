"""MCP tasks in the shape of spec 2025-11-25, for every session that negotiates that version.

Such a session sees `capabilities.tasks` and, on each technique tool (and `flora_run_technique`),
`execution.taskSupport: "optional"`; a client that does not know tasks never sends `task`, and nothing changes for it.
A `tools/call` carrying `task` returns at once with a `CreateTaskResult`, and the call runs in the background
(task_store.py). `tasks/get` shows the run's progress as the task's `statusMessage`; `tasks/result` blocks until the
task ends and returns the `CallToolResult` with the related-task `_meta`; a call that needs the person's confirmation
puts its task in `input_required`, and the `tasks/result` the client then sends carries the `elicitation/create`
(related-task `_meta`) whose answer lets the call go on; `tasks/cancel` stops waiting and never the paid run;
`tasks/list` lists the caller's tasks.

What mcp 2.3.0 gives, read from its source (November 2026): the task types (`Task`, `CreateTaskResult`,
`GetTaskRequest(Params)`, ..., `ToolExecution.task_support`, `CallToolRequestParams.task`), but no dispatch: the
low-level `Server` has no task handlers and never sets `capabilities.tasks`, and it validates an `on_call_tool` result
as a `CallToolResult`. So a `Server.middleware` adds the capability to `initialize`, marks tools in `tools/list`, and
answers task-augmented `tools/call` itself; `Server.add_request_handler` serves the four `tasks/*` methods. Not done:
`notifications/tasks/status` (optional, and not in the SDK's notification surface): clients poll `tasks/get`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp.types as types
from mcp.server import Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import METHOD_NOT_FOUND
from mcp_types.methods import serialize_server_result

from flora_mcp.core.tool_names import RUN
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.server.confirm import answer_of, can_ask, form_schema
from flora_mcp.server.roots import roots_of
from flora_mcp.server.task_entry import TaskEntry
from flora_mcp.server.task_store import TaskStore

__all__ = ["TASKS_VERSION", "install_tasks", "task_capable"]

log = logging.getLogger("flora_mcp.server.tasks")

TASKS_VERSION = "2025-11-25"
RELATED_TASK = "io.modelcontextprotocol/related-task"
IMMEDIATE_RESPONSE = "io.modelcontextprotocol/model-immediate-response"
CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}

Resolver = Callable[[ServerRequestContext[Any]], Awaitable[Toolkit]]


def task_capable(toolkit: Toolkit, name: str) -> bool:
    """Whether a call of this tool may become a task: a technique's own tool, or the compact run tool."""
    catalog = toolkit.loader.current
    return name == RUN or (catalog is not None and catalog.get(name) is not None)


def _task(entry: TaskEntry) -> types.Task:
    return types.Task(task_id=entry.task_id, status=entry.status, status_message=entry.message,
                      created_at=entry.created_at, last_updated_at=entry.updated_at, ttl=entry.ttl_ms,
                      poll_interval=entry.poll_interval_ms())


def _wire_result(entry: TaskEntry) -> dict[str, Any]:
    """The task's `CallToolResult` as a 2025-11-25 client takes it, with the related-task `_meta`."""
    assert entry.result is not None  # set with done
    wire = serialize_server_result("tools/call", TASKS_VERSION,
                                   entry.result.model_dump(by_alias=True, mode="json", exclude_none=True))
    wire["_meta"] = {**(wire.get("_meta") or {}), RELATED_TASK: {"taskId": entry.task_id}}
    return wire


def _as_dict(result: HandlerResult) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if result is None:
        return {}
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def install_tasks(server: Server[Any], resolve: Resolver, store: TaskStore) -> Server[Any]:
    """Give `server` the 2025-11-25 tasks: a middleware for `initialize`, `tools/list` and task-augmented
    `tools/call`, and the `tasks/get|result|cancel|list` handlers, on `store` (whose lifespan the caller runs)."""

    async def toolkit_for_tasks(ctx: ServerRequestContext[Any]) -> Toolkit | None:
        if ctx.protocol_version != TASKS_VERSION or not store.running:
            return None
        try:
            return await resolve(ctx)
        except Exception:
            return None  # no toolkit (hosted, no key): the plain answer says why

    async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            answer = _as_dict(await call_next(ctx))
            if answer.get("protocolVersion") == TASKS_VERSION and store.running:
                answer["capabilities"] = {**answer.get("capabilities", {}), "tasks": CAPABILITY}
            return answer
        if ctx.method == "tools/list":
            answer = _as_dict(await call_next(ctx))
            toolkit = await toolkit_for_tasks(ctx)
            if toolkit is not None:
                answer["tools"] = [{**tool, "execution": {"taskSupport": "optional"}}
                                   if task_capable(toolkit, tool.get("name", "")) else tool
                                   for tool in answer.get("tools", [])]
            return answer
        params: Mapping[str, Any] = ctx.params or {}
        if ctx.method != "tools/call" or not isinstance(params.get("task"), dict):
            return await call_next(ctx)
        toolkit = await toolkit_for_tasks(ctx)
        if toolkit is None:
            return await call_next(ctx)  # not a 2025-11-25 session: the task field is ignored, as the spec requires
        return await start_task(toolkit, params, ctx, call_next)

    async def start_task(toolkit: Toolkit, params: Mapping[str, Any], ctx: ServerRequestContext[Any],
                         call_next: CallNext) -> HandlerResult:
        request = types.CallToolRequestParams.model_validate(params, by_name=False)
        try:
            await toolkit.wait_for_catalog()
        except Exception:
            return await call_next(ctx)  # no catalog, no task: the plain call's result says what went wrong
        if not task_capable(toolkit, request.name):
            raise MCPError(METHOD_NOT_FOUND, f"Tool {request.name!r} does not support task-augmented calls")
        entry = store.start(toolkit, request.name, dict(request.arguments or {}),
                            ttl_ms=request.task.ttl if request.task else None, shape=TASKS_VERSION,
                            can_ask=can_ask(ctx), roots=roots_of(ctx.session))
        created = types.CreateTaskResult(task=_task(entry)).model_dump(by_alias=True, mode="json", exclude_none=True)
        created["_meta"] = {IMMEDIATE_RESPONSE: (
            f"{request.name} is running as task {entry.task_id}; its result arrives when the FLORA run ends. "
            "Do not call the tool again for the same work.")}
        return created

    async def enabled_toolkit(ctx: ServerRequestContext[Any]) -> Toolkit:
        toolkit = await toolkit_for_tasks(ctx)
        if toolkit is None:
            raise MCPError(METHOD_NOT_FOUND, "Method not found", ctx.method)
        return toolkit

    async def get_task(ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> types.GetTaskResult:
        entry = await store.get(await enabled_toolkit(ctx), params.task_id, TASKS_VERSION)
        return types.GetTaskResult.model_validate(_task(entry).model_dump())

    async def task_result(ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams
                          ) -> dict[str, Any]:
        entry = await store.get(await enabled_toolkit(ctx), params.task_id, TASKS_VERSION)
        while not entry.done.is_set():
            change = entry.next_change()
            if entry.awaiting_answer and not entry.being_asked:
                await ask_within(ctx, entry)
                continue
            await change.wait()
        return _wire_result(entry)

    async def ask_within(ctx: ServerRequestContext[Any], entry: TaskEntry) -> None:
        """Send the task's question to the person in this `tasks/result` request (2025-11-25's way)."""
        confirmation = entry.asking
        assert confirmation is not None
        entry.being_asked = True
        form = types.ElicitRequestFormParams.model_validate({
            "message": confirmation.message(), "requestedSchema": form_schema(confirmation),
            "_meta": {RELATED_TASK: {"taskId": entry.task_id}}})
        try:
            answer = await ctx.session.send_request(types.ElicitRequest(params=form), types.ElicitResult,
                                                    metadata=ServerMessageMetadata(related_request_id=ctx.request_id))
            entry.answer(answer_of(answer))
        except Exception as exc:  # the client could not ask: nobody said yes
            log.warning("no answer to the confirmation of task %s: %r", entry.task_id, exc)
            if entry.awaiting_answer:
                entry.answer("cancel")
        finally:
            entry.being_asked = False

    async def cancel_task(ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams
                          ) -> types.CancelTaskResult:
        entry = await store.cancel(await enabled_toolkit(ctx), params.task_id, TASKS_VERSION)
        return types.CancelTaskResult.model_validate(_task(entry).model_dump())

    async def list_tasks(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams
                         ) -> types.ListTasksResult:
        toolkit = await enabled_toolkit(ctx)
        return types.ListTasksResult(tasks=[_task(e) for e in store.list(toolkit.account, TASKS_VERSION)])

    server.middleware.append(middleware)
    server.add_request_handler("tasks/get", types.GetTaskRequestParams, get_task)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, task_result)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, cancel_task)
    server.add_request_handler("tasks/list", types.PaginatedRequestParams, list_tasks)
    return server
