"""MCP tasks (spec 2025-11-25, experimental) for technique tools, behind FLORA_TASKS (off by default).

A client that speaks protocol 2025-11-25 sees `capabilities.tasks` and, on each technique tool (and
`flora_run_technique`), `execution.taskSupport: "optional"`. A `tools/call` carrying `task` returns at once with a
`CreateTaskResult`; the call then runs in the background through `Toolkit.call` (validation, caps, journal: the same
path as a plain call), waiting past FLORA_MAX_WAIT until the FLORA run ends or FLORA_RUN_TIMEOUT. `tasks/get` shows
the run's progress as the task's `statusMessage`; `tasks/result` blocks until the task ends and returns the
`CallToolResult` with the related-task `_meta`; `tasks/cancel` stops waiting and never the paid run (the journal
keeps it; `flora_list_runs` / `flora_get_run` pick it up); `tasks/list` lists the caller's tasks. Tasks live in
memory for their ttl (default one hour), per FLORA account. Clients that send no `task`, speak another protocol
version, or meet a server with FLORA_TASKS off get the normal behaviour.

What mcp 2.3.0 supports, read from its source (November 2026):
- Types only: `mcp.types` has `Task`, `CreateTaskResult`, `GetTaskRequest(Params)`, `GetTaskResult`,
  `GetTaskPayloadRequest`, `CancelTaskRequest`, `CancelTaskResult`, `ListTasksResult`, `TaskMetadata`,
  `ServerTasksCapability`, `ToolExecution.task_support`, and `CallToolRequestParams.task`. The 2025-11-25 wire models
  carry `ServerCapabilities.tasks` and `Tool.execution`.
- Not dispatched: `mcp_types.methods` leaves `tasks/*` and `notifications/tasks/status` out of the 2025-11-25
  surface "deliberately"; the low-level `Server` has no task handlers, no task store, and `get_capabilities()` never
  sets `tasks`. In 2026-07-28 tasks left the core spec for an extension, which 2.3.0 does not implement.
- The `tools/call` result is validated against `CallToolResult` for the negotiated version, so an `on_call_tool`
  handler cannot return a `CreateTaskResult` (the runner answers "Handler returned an invalid result").
- The SDK's own `Client` validates a `tools/call` answer the same way, so it cannot make a task-augmented call either;
  `ClientSession.send_request` can send `tasks/get`, `tasks/result`, `tasks/cancel` and `tasks/list`.
How this module fills the gaps, with public SDK API only: a `Server.middleware` adds the capability to `initialize`,
marks tools in `tools/list`, and answers task-augmented `tools/call` itself before the SDK's result validation;
`Server.add_request_handler` serves the four `tasks/*` methods; the server's lifespan owns the task group in which
background calls run. Not done: `notifications/tasks/status` (optional in the spec, and not in the SDK's
notification surface) and progress notifications after the `CreateTaskResult` (the SDK gives no supported way to use
the request's progress token once it is answered): clients poll `tasks/get`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.abc
import mcp.types as types
from mcp.server import Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND
from mcp_types.methods import serialize_server_result

from flora_mcp.core.results import ToolResult
from flora_mcp.core.runs import RootsProvider
from flora_mcp.core.tool_names import GET_RUN, RUN
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.core.translator import CallPhase, cancelled_task, from_failure
from flora_mcp.server.roots import roots_of

__all__ = ["TASKS_VERSION", "TaskStore", "install_tasks"]

log = logging.getLogger("flora_mcp.server.tasks")

TASKS_VERSION = "2025-11-25"
RELATED_TASK = "io.modelcontextprotocol/related-task"
IMMEDIATE_RESPONSE = "io.modelcontextprotocol/model-immediate-response"
DEFAULT_TTL_MS = 60 * 60 * 1000
MAX_TTL_MS = 24 * 60 * 60 * 1000
MAX_LIVE_TASKS = 50
"""Working tasks per FLORA account at once; each may be a paid run."""
TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
TERMINAL = frozenset({"completed", "failed", "cancelled"})
CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}

Resolver = Callable[[ServerRequestContext[Any]], Awaitable[Toolkit]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Entry:
    """One task: its state for `tasks/get`, its result for `tasks/result`, its scope for `tasks/cancel`."""

    task_id: str
    owner: str
    tool: str
    ttl_ms: int
    poll_ms: int
    status: TaskStatus = "working"
    message: str = "submitting"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    born: float = field(default_factory=anyio.current_time)
    result: dict[str, Any] | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def task(self) -> types.Task:
        return types.Task(task_id=self.task_id, status=self.status, status_message=self.message,
                          created_at=self.created_at, last_updated_at=self.updated_at, ttl=self.ttl_ms,
                          poll_interval=self.poll_ms)

    def update(self, message: str) -> None:
        if self.status not in TERMINAL:
            self.message = message
            self.updated_at = _now()

    def finish(self, status: TaskStatus, message: str, result: types.CallToolResult) -> None:
        """End the task once; a cancelled task stays cancelled whatever its call did afterwards."""
        if self.status in TERMINAL:
            return
        # Shaped as a 2025-11-25 CallToolResult, exactly what the SDK would have sent for a plain call.
        wire = serialize_server_result("tools/call", TASKS_VERSION,
                                       result.model_dump(by_alias=True, mode="json", exclude_none=True))
        wire["_meta"] = {**(wire.get("_meta") or {}), RELATED_TASK: {"taskId": self.task_id}}
        self.status, self.message, self.updated_at, self.result = status, message, _now(), wire
        self.done.set()


class TaskStore:
    """Tasks by id, and the task group their calls run in while the server runs."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Entry] = {}
        self._group: anyio.abc.TaskGroup | None = None

    @property
    def running(self) -> bool:
        return self._group is not None

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[None]:
        """Own the background calls for the server's lifetime; leaving stops their waits (never their runs)."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    def start(self, toolkit: Toolkit, name: str, arguments: dict[str, Any], ttl_ms: int | None,
              roots: RootsProvider | None = None) -> _Entry:
        """A new working task whose call runs in the background."""
        if self._group is None:
            raise MCPError(INTERNAL_ERROR, "tasks are not available: the server is not running")
        self._purge()
        owner = toolkit.account
        live = sum(1 for e in self._tasks.values() if e.owner == owner and e.status not in TERMINAL)
        if live >= MAX_LIVE_TASKS:
            raise MCPError(INTERNAL_ERROR, f"{live} tasks are already working; wait for some to finish")
        ttl = min(max(ttl_ms or DEFAULT_TTL_MS, 1000), MAX_TTL_MS)
        entry = _Entry(task_id=uuid.uuid4().hex, owner=owner, tool=name, ttl_ms=ttl,
                       poll_ms=int(toolkit.settings.poll_interval * 1000))
        self._tasks[entry.task_id] = entry
        self._group.start_soon(_work, entry, toolkit, name, arguments, roots)
        return entry

    def get(self, owner: str, task_id: str) -> _Entry:
        self._purge()
        entry = self._tasks.get(task_id)
        if entry is None or entry.owner != owner:
            raise MCPError(INVALID_PARAMS, "Failed to retrieve task: Task not found")
        return entry

    def list(self, owner: str) -> list[_Entry]:
        self._purge()
        return [e for e in self._tasks.values() if e.owner == owner]

    def cancel(self, owner: str, task_id: str) -> _Entry:
        entry = self.get(owner, task_id)
        if entry.status in TERMINAL:
            raise MCPError(INVALID_PARAMS, f"Cannot cancel task: it is already {entry.status}")
        entry.scope.cancel()
        entry.finish("cancelled", "Cancelled: flora-mcp stopped waiting. A submitted FLORA run goes on and is charged.",
                     cancelled_task(entry.tool).to_call_tool_result())
        return entry

    def _purge(self) -> None:
        now = anyio.current_time()
        for task_id, entry in list(self._tasks.items()):
            if entry.status in TERMINAL and now - entry.born > entry.ttl_ms / 1000:
                del self._tasks[task_id]


async def _work(entry: _Entry, toolkit: Toolkit, name: str, arguments: dict[str, Any],
                roots: RootsProvider | None = None) -> None:
    async def progress(percent: float, message: str) -> None:
        entry.update(f"{message} ({percent:.0f}%)")

    phase = CallPhase()
    with entry.scope:
        try:
            result = await toolkit.call(name, arguments, progress=progress, phase=phase, roots=roots)
            result = await _until_the_run_ends(toolkit, name, result, progress)
            answer = result.to_call_tool_result(await toolkit.previews(result))
        except Exception as exc:
            result = from_failure(name, exc, phase)
            answer = result.to_call_tool_result()
        first_line = answer.content[0].text.splitlines()[0] if isinstance(answer.content[0], types.TextContent) else ""
        entry.finish("failed" if answer.is_error else "completed", first_line or result.status, answer)


async def _until_the_run_ends(toolkit: Toolkit, name: str, result: ToolResult,
                              progress: Callable[[float, str], Awaitable[None]]) -> ToolResult:
    """Keep waiting while the run goes on: a task has no client timeout to beat, only FLORA_RUN_TIMEOUT."""
    with anyio.move_on_after(toolkit.settings.run_timeout):
        while result.status in ("running", "pending") and result.run_id and not result.runs:
            resumed = await toolkit.call(GET_RUN, {"run_id": result.run_id}, progress=progress)
            result = resumed.model_copy(update={"tool": name})
    return result


def _owner(toolkit: Toolkit) -> str:
    return toolkit.account


def _as_dict(result: HandlerResult) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if result is None:
        return {}
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def install_tasks(server: Server[Any], resolve: Resolver) -> Server[Any]:
    """Give `server` MCP tasks for clients that negotiate them, when the resolved toolkit has FLORA_TASKS on.

    Args:
        server: the low-level server from `create_server`.
        resolve: the toolkit of a request.

    Returns:
        The same server: its lifespan now also runs the task store, a middleware handles `initialize`,
        `tools/list` and task-augmented `tools/call`, and `tasks/get|result|cancel|list` are served.
    """
    store = TaskStore()
    inner_lifespan = server.lifespan

    @asynccontextmanager
    async def lifespan(app: Server[Any]) -> AsyncIterator[Any]:
        context: AbstractAsyncContextManager[Any] = inner_lifespan(app)
        async with context as state, store.serve():
            yield state

    server.lifespan = lifespan

    async def toolkit_if_enabled(ctx: ServerRequestContext[Any]) -> Toolkit | None:
        if ctx.protocol_version != TASKS_VERSION or not store.running:
            return None
        try:
            toolkit = await resolve(ctx)
        except Exception:
            return None
        return toolkit if toolkit.settings.tasks else None

    def task_capable(toolkit: Toolkit, name: str) -> bool:
        catalog = toolkit.catalog
        return name == RUN or catalog.get(name) is not None

    async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            answer = _as_dict(await call_next(ctx))
            if answer.get("protocolVersion") == TASKS_VERSION and store.running:
                try:
                    toolkit = await resolve(ctx)
                except Exception:
                    return answer  # no toolkit yet (hosted, no key): no tasks for this client
                if toolkit.settings.tasks:
                    answer["capabilities"] = {**answer.get("capabilities", {}), "tasks": CAPABILITY}
            return answer
        if ctx.method == "tools/list":
            answer = _as_dict(await call_next(ctx))
            enabled = await toolkit_if_enabled(ctx)
            if enabled is not None:
                answer["tools"] = [{**tool, "execution": {"taskSupport": "optional"}}
                                   if task_capable(enabled, tool.get("name", "")) else tool
                                   for tool in answer.get("tools", [])]
            return answer
        params: Mapping[str, Any] = ctx.params or {}
        if ctx.method != "tools/call" or not isinstance(params.get("task"), dict):
            return await call_next(ctx)
        for_tasks = await toolkit_if_enabled(ctx)
        if for_tasks is None:
            # No tasks capability was declared: the task field is ignored, as the spec requires.
            return await call_next(ctx)
        return await start_task(for_tasks, params, ctx, call_next)

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
                            request.task.ttl if request.task else None, roots_of(ctx.session))
        created = types.CreateTaskResult(task=entry.task()).model_dump(by_alias=True, mode="json", exclude_none=True)
        created["task"]["ttl"] = entry.ttl_ms
        created["_meta"] = {IMMEDIATE_RESPONSE: (
            f"{request.name} is running as task {entry.task_id}; its result arrives when the FLORA run ends. "
            "Do not call the tool again for the same work.")}
        return created

    async def enabled_toolkit(ctx: ServerRequestContext[Any]) -> Toolkit:
        toolkit = await toolkit_if_enabled(ctx)
        if toolkit is None:
            raise MCPError(METHOD_NOT_FOUND, "Method not found", ctx.method)
        return toolkit

    async def get_task(ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> types.GetTaskResult:
        toolkit = await enabled_toolkit(ctx)
        entry = store.get(_owner(toolkit), params.task_id)
        return types.GetTaskResult.model_validate(entry.task().model_dump())

    async def task_result(ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams
                          ) -> dict[str, Any]:
        toolkit = await enabled_toolkit(ctx)
        entry = store.get(_owner(toolkit), params.task_id)
        await entry.done.wait()
        assert entry.result is not None  # set with done
        return entry.result

    async def cancel_task(ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams
                          ) -> types.CancelTaskResult:
        toolkit = await enabled_toolkit(ctx)
        entry = store.cancel(_owner(toolkit), params.task_id)
        return types.CancelTaskResult.model_validate(entry.task().model_dump())

    async def list_tasks(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams
                         ) -> types.ListTasksResult:
        toolkit = await enabled_toolkit(ctx)
        return types.ListTasksResult(tasks=[e.task() for e in store.list(_owner(toolkit))])

    server.middleware.append(middleware)
    server.add_request_handler("tasks/get", types.GetTaskRequestParams, get_task)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, task_result)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, cancel_task)
    server.add_request_handler("tasks/list", types.PaginatedRequestParams, list_tasks)
    return server
