"""MCP tasks, both wire shapes: one store of tasks and the background calls they follow.

A task is one `tools/call` run in the background through `Toolkit.call` (validation, caps, confirmation, journal: the
same path as a plain call), waiting past FLORA_MAX_WAIT until its FLORA run ends or FLORA_RUN_TIMEOUT. The wire shapes
make their answers from the same `TaskEntry`: 2025-11-25 in tasks.py, the 2026-07-28 `io.modelcontextprotocol/tasks`
extension in tasks_ext.py.

    working -> input_required (the person is asked to confirm the price) -> working -> completed | failed
       \\-> cancelled (by the client: flora-mcp stops waiting; a submitted run goes on, and is charged)

Every change of state is written to the store (flora_mcp/store), in order, by one writer task, so a restarted server
answers for the tasks it created: a finished task with its result, a running one by following its FLORA run again.
With a shared store (PostgreSQL), every replica answers from the same rows: the first final state written stays.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.abc
import mcp.types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from flora_mcp.core.confirm import Answer, Confirmation
from flora_mcp.core.polling import PollScheduler
from flora_mcp.core.results import ToolResult
from flora_mcp.core.runs import RootsProvider
from flora_mcp.core.tool_names import GET_RUN
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.core.translator import CallPhase, cancelled_task, combined, from_failure, interrupted_task
from flora_mcp.store import Store, StoredTask

__all__ = ["ANSWER_TIMEOUT", "DEFAULT_TTL_MS", "MAX_LIVE_TASKS", "TERMINAL", "TaskEntry", "TaskStatus", "TaskStore"]

log = logging.getLogger("flora_mcp.server.tasks")

TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
DEFAULT_TTL_MS = 60 * 60 * 1000
MAX_TTL_MS = 24 * 60 * 60 * 1000
MAX_LIVE_TASKS = 50
"""Working tasks per FLORA account at once; each may be a paid run."""
ANSWER_TIMEOUT = 600.0
"""Seconds a task waits in input_required for the person's answer; then it is cancelled, having sent nothing."""

ORPHANED = 120.0
"""Seconds a shared task's row may stand still (a running task writes on every new run and at its end) before
another replica takes its runs over."""

CANCELLED_RUNNING = "Cancelled: flora-mcp stopped waiting. A submitted FLORA run goes on and is charged."
CANCELLED_UNSENT = "Cancelled before anything was sent to FLORA: nothing was charged."


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TaskEntry:
    """One task: its state for `tasks/get`, its result, its question to the person, its scope for `tasks/cancel`."""

    task_id: str
    owner: str
    tool: str
    shape: str
    ttl_ms: int
    poll_ms: int
    status: TaskStatus = "working"
    message: str = "submitting"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    result: types.CallToolResult | None = None
    run_ids: list[str] = field(default_factory=list)
    asking: Confirmation | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    on_change: Callable[[TaskEntry], None] | None = None
    being_asked: bool = False
    """A request is showing the question to the person right now (2025-11-25: one `tasks/result` at a time)."""
    mirror: bool = False
    """Another replica runs this task (shared store): this entry only follows its row."""
    _answer: Answer | None = None
    _answered: anyio.Event = field(default_factory=anyio.Event)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _schedule: PollScheduler | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def poll_interval_ms(self) -> int:
        """When to look again: when the run should be done, from its progress rate (as the FLORA poller judges it),
        never sooner than FLORA_POLL_INTERVAL."""
        if self._schedule is None or self.terminal:
            return self.poll_ms
        return max(self.poll_ms, int(self._schedule.next_delay() * 1000))

    def progressed(self, percent: float, message: str) -> None:
        if self._schedule is None:
            self._schedule = PollScheduler(min_interval=self.poll_ms / 1000)
        self._schedule.observe(anyio.current_time(), percent)
        self._set(message=f"{message} ({percent:.0f}%)", persist=False)

    def ran(self, run_id: str) -> None:
        """A FLORA run of this task exists: kept (and journaled) so that a restart can follow it."""
        if run_id not in self.run_ids:
            self.run_ids.append(run_id)
            self._set(message=f"run {run_id} submitted")

    async def ask(self, confirmation: Confirmation) -> Answer:
        """Wait in input_required for the person's answer to `confirmation`; no answer in time is a cancel."""
        self.asking, self._answer, self._answered = confirmation, None, anyio.Event()
        self._set(status="input_required", message=confirmation.question)
        with anyio.move_on_after(ANSWER_TIMEOUT):
            await self._answered.wait()
        answer: Answer = self._answer or "cancel"
        self.asking = None
        self._set(status="working", message="confirmed" if answer == "accept" else "not confirmed")
        return answer

    def answer(self, answer: Answer) -> None:
        """The person's answer, from the client.

        Raises:
            MCPError: INVALID_PARAMS when the task is not waiting for one.
        """
        if not self.awaiting_answer:
            raise MCPError(INVALID_PARAMS, f"Task {self.task_id} is {self.status}, not waiting for input.")
        self._answer = answer
        self._answered.set()

    @property
    def awaiting_answer(self) -> bool:
        """In input_required, and no answer given yet."""
        return self.status == "input_required" and self.asking is not None and not self._answered.is_set()

    def next_change(self) -> anyio.Event:
        """Set at the next change of state (take it before looking at the state, then wait on it)."""
        return self._changed

    def adopt(self, stored: StoredTask) -> None:
        """Take the state another replica wrote (shared store), without writing it back; a final one ends this
        entry's own work, whose answer would only come second (even one this entry had reached itself)."""
        status: TaskStatus = stored.status  # type: ignore[assignment]  # written by _stored
        if stored.status in TERMINAL:
            self.scope.cancel()
            self.run_ids = list(stored.run_ids)
            self.result = None if stored.result is None else types.CallToolResult.model_validate(stored.result)
            self.status, self.message, self.updated_at = status, stored.message, stored.updated_at
            changed, self._changed = self._changed, anyio.Event()
            changed.set()
            self.done.set()
        elif not self.terminal:
            self.run_ids = list(stored.run_ids)
            self._set(status=status, message=stored.message, persist=False)

    def finish(self, status: TaskStatus, message: str, result: types.CallToolResult | None) -> None:
        """End the task once; a cancelled task stays cancelled whatever its call did afterwards."""
        if self.terminal:
            return
        self.result = result
        self._set(status=status, message=message)
        self.done.set()

    def _set(self, *, status: TaskStatus | None = None, message: str | None = None, persist: bool = True) -> None:
        if self.terminal:
            return
        self.status = status or self.status
        self.message = message or self.message
        self.updated_at = now_iso()
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        if persist and self.on_change is not None:
            self.on_change(self)


class _TaskPhase(CallPhase):
    """The call's phase, telling its task of every run that appears."""

    def __init__(self, entry: TaskEntry, parent: CallPhase | None = None) -> None:
        super().__init__(parent)
        self._entry = entry

    def for_run(self) -> CallPhase:
        return _TaskPhase(self._entry, self)

    def created(self, run_id: str) -> None:
        super().created(run_id)
        self._entry.ran(run_id)


class TaskStore:
    """Tasks by id, the task group their calls run in while the server runs, and the journal that outlives it."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskEntry] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._saves: MemoryObjectSendStream[tuple[Store, TaskEntry, StoredTask]] | None = None
        self._purged: set[int] = set()

    @property
    def running(self) -> bool:
        return self._group is not None

    def attach(self, server: Server[Any]) -> None:
        """Run this store for as long as `server` runs: its lifespan (app-wide, even on stateless HTTP) owns it."""
        inner = server.lifespan

        @asynccontextmanager
        async def lifespan(app: Server[Any]) -> AsyncIterator[Any]:
            context: AbstractAsyncContextManager[Any] = inner(app)
            async with context as state, self.serve():
                yield state

        server.lifespan = lifespan

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[None]:
        """Own the background calls for the server's lifetime; leaving stops their waits (never their runs)."""
        send, receive = anyio.create_memory_object_stream[tuple[Store, TaskEntry, StoredTask]](math.inf)
        async with anyio.create_task_group() as group, anyio.create_task_group() as saver:
            saver.start_soon(_write_saves, receive)
            self._group, self._saves = group, send
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()
                self._saves = None
                send.close()  # the saver writes what is queued, then ends

    def start(self, toolkit: Toolkit, name: str, arguments: dict[str, Any], *, ttl_ms: int | None, shape: str,
              can_ask: bool, roots: RootsProvider | None = None) -> TaskEntry:
        """A new working task whose call runs in the background; `can_ask`: its client can answer a confirmation;
        `roots`: the client's MCP roots, for a call naming a local file."""
        if self._group is None:
            raise MCPError(INTERNAL_ERROR, "tasks are not available: the server is not running")
        self._purge()
        owner = toolkit.account
        live = sum(1 for e in self._tasks.values() if e.owner == owner and not e.terminal)
        if live >= MAX_LIVE_TASKS:
            raise MCPError(INTERNAL_ERROR, f"{live} tasks are already working; wait for some to finish")
        entry = TaskEntry(task_id=uuid.uuid4().hex, owner=owner, tool=name, shape=shape,
                          ttl_ms=min(max(ttl_ms or DEFAULT_TTL_MS, 1000), MAX_TTL_MS),
                          poll_ms=int(toolkit.settings.poll_interval * 1000))
        self._track(entry, toolkit)
        self._group.start_soon(_work, entry, toolkit, name, arguments, can_ask, roots)
        return entry

    async def get(self, toolkit: Toolkit, task_id: str, shape: str) -> TaskEntry:
        """The task, from memory or, after a restart, from the journal (a running one follows its run again).

        Raises:
            MCPError: INVALID_PARAMS for a task this account does not have (in this shape).
        """
        self._purge()
        entry = self._tasks.get(task_id)
        if entry is None:
            entry = await self._restore(toolkit, task_id)
        elif toolkit.journal.shared and not entry.terminal and entry.owner == toolkit.account:
            stored = await toolkit.journal.load_task(toolkit.account, task_id)  # another replica may have ended it
            if stored is not None and (entry.mirror or stored.status in TERMINAL):
                entry.adopt(stored)
        if entry is None or entry.owner != toolkit.account or entry.shape != shape:
            raise MCPError(INVALID_PARAMS, "Failed to retrieve task: Task not found")
        return entry

    def list(self, owner: str, shape: str) -> list[TaskEntry]:
        self._purge()
        return [e for e in self._tasks.values() if e.owner == owner and e.shape == shape]

    async def cancel(self, toolkit: Toolkit, task_id: str, shape: str) -> TaskEntry:
        """Stop waiting for the task's call; a run it submitted goes on.

        Raises:
            MCPError: INVALID_PARAMS for an unknown task or one that already ended.
        """
        entry = await self.get(toolkit, task_id, shape)
        if entry.terminal:
            raise MCPError(INVALID_PARAMS, f"Cannot cancel task: it is already {entry.status}")
        entry.scope.cancel()
        submitted = entry.status != "input_required"  # while the person is asked, nothing has been sent
        entry.finish("cancelled", CANCELLED_RUNNING if submitted else CANCELLED_UNSENT,
                     cancelled_task(entry.tool, submitted=submitted).to_call_tool_result())
        return entry

    def _track(self, entry: TaskEntry, toolkit: Toolkit) -> None:
        self._tasks[entry.task_id] = entry
        store = toolkit.journal
        entry.on_change = lambda changed: self._save(store, changed)
        self._save(store, entry)

    def _save(self, store: Store, entry: TaskEntry) -> None:
        if self._saves is not None:
            self._saves.send_nowait((store, entry, _stored(entry)))

    async def _restore(self, toolkit: Toolkit, task_id: str) -> TaskEntry | None:
        try:
            if id(toolkit.journal) not in self._purged:
                self._purged.add(id(toolkit.journal))
                await toolkit.journal.purge_tasks()
            stored = await toolkit.journal.load_task(toolkit.account, task_id)
        except Exception as exc:  # noqa: BLE001 - a store that fails answers "not found", never a traceback
            log.warning("cannot read MCP task %s from the store: %s", task_id, exc)
            return None
        if stored is None:
            return None
        entry = _restored(stored)
        self._track(entry, toolkit)
        if entry.terminal:
            return entry
        if toolkit.journal.shared and self._group is not None:
            # Shared store: another replica runs it, or ran it and died. Follow its row; take the runs over only when
            # the row has not changed in ORPHANED seconds.
            entry.mirror = True
            self._group.start_soon(_follow_row, entry, toolkit)
        else:
            self._follow_again(entry, toolkit, stored)
        return entry

    def _follow_again(self, entry: TaskEntry, toolkit: Toolkit, stored: StoredTask) -> None:
        """A task that was running when the server stopped: follow its runs, or say what is known."""
        if stored.status == "input_required":
            entry.finish("failed", "flora-mcp restarted while waiting for the person's answer: nothing was sent.",
                         interrupted_task(entry.tool, submitted=False).to_call_tool_result())
        elif not entry.run_ids or self._group is None:
            entry.finish("failed", "flora-mcp restarted before it knew this task's FLORA run.",
                         interrupted_task(entry.tool, submitted=True).to_call_tool_result())
        else:
            entry.message = "following the run again after a restart"
            self._group.start_soon(_resume, entry, toolkit)

    def _purge(self) -> None:
        now = datetime.now(UTC)
        for task_id, entry in list(self._tasks.items()):
            ended = datetime.fromisoformat(entry.updated_at.replace("Z", "+00:00"))
            if entry.terminal and (now - ended).total_seconds() * 1000 > entry.ttl_ms:
                del self._tasks[task_id]


async def _write_saves(saves: MemoryObjectReceiveStream[tuple[Store, TaskEntry, StoredTask]]) -> None:
    """Write each task's states in the order they happened; a store that fails leaves the tasks in memory."""
    failed = False
    async with saves:
        async for store, entry, stored in saves:
            try:
                if not await store.save_task(stored):
                    ended = await store.load_task(stored.account, stored.task_id)  # another replica ended it first
                    if ended is not None:
                        entry.adopt(ended)
            except Exception as exc:  # noqa: BLE001 - the task lives on in memory
                if not failed:
                    log.warning("cannot write MCP task %s to the store (kept in memory): %s", entry.task_id, exc)
                failed = True


async def _follow_row(entry: TaskEntry, toolkit: Toolkit) -> None:
    """A task another replica runs: its row read every poll interval until it ends; its runs followed here once
    the row has stood still for ORPHANED seconds (its replica is gone)."""
    while not entry.terminal:
        await anyio.sleep(max(entry.poll_ms / 1000, 0.2))
        try:
            stored = await toolkit.journal.load_task(entry.owner, entry.task_id)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("cannot read MCP task %s from the store: %s", entry.task_id, exc)
            continue
        if stored is None:
            return
        entry.adopt(stored)
        still = (datetime.now(UTC) - datetime.fromisoformat(stored.updated_at.replace("Z", "+00:00"))).total_seconds()
        if not entry.terminal and stored.status == "working" and stored.run_ids and still > ORPHANED:
            entry.mirror = False
            entry.message = "following the run again: the replica that ran it is gone"
            await _resume(entry, toolkit)
            return


def _stored(entry: TaskEntry) -> StoredTask:
    result = None if entry.result is None else entry.result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return StoredTask(task_id=entry.task_id, account=entry.owner, shape=entry.shape, tool=entry.tool,
                      status=entry.status, message=entry.message, created_at=entry.created_at,
                      updated_at=entry.updated_at, ttl_ms=entry.ttl_ms, poll_ms=entry.poll_ms,
                      run_ids=list(entry.run_ids), result=result)


def _restored(stored: StoredTask) -> TaskEntry:
    entry = TaskEntry(task_id=stored.task_id, owner=stored.account, tool=stored.tool, shape=stored.shape,
                      ttl_ms=stored.ttl_ms, poll_ms=stored.poll_ms, message=stored.message,
                      created_at=stored.created_at, updated_at=stored.updated_at, run_ids=list(stored.run_ids))
    if stored.status in TERMINAL:
        entry.status = stored.status  # type: ignore[assignment]  # one of TERMINAL, written by _stored
        entry.result = None if stored.result is None else types.CallToolResult.model_validate(stored.result)
        entry.done.set()
    return entry


async def _work(entry: TaskEntry, toolkit: Toolkit, name: str, arguments: dict[str, Any], can_ask: bool,
                roots: RootsProvider | None) -> None:
    async def progress(percent: float, message: str) -> None:
        entry.progressed(percent, message)

    async def confirm(confirmation: Confirmation) -> Answer:
        return await entry.ask(confirmation) if can_ask else "unavailable"

    phase = _TaskPhase(entry)
    with entry.scope:
        try:
            result = await toolkit.call(name, arguments, progress=progress, phase=phase, confirm=confirm, roots=roots)
            result = await _until_the_run_ends(toolkit, name, result, progress)
            answer = result.to_call_tool_result(await toolkit.previews(result))
        except Exception as exc:
            result = from_failure(name, exc, phase)
            answer = result.to_call_tool_result()
        _end(entry, result, answer)


async def _resume(entry: TaskEntry, toolkit: Toolkit) -> None:
    """Follow a restored task's runs to their end."""
    async def progress(percent: float, message: str) -> None:
        entry.progressed(percent, message)

    with entry.scope:
        results = []
        for run_id in entry.run_ids:
            resumed = await toolkit.call(GET_RUN, {"run_id": run_id}, progress=progress)
            results.append(await _until_the_run_ends(toolkit, entry.tool, resumed.model_copy(
                update={"tool": entry.tool}), progress))
        result = results[0] if len(results) == 1 else combined(entry.tool, results)
        _end(entry, result, result.to_call_tool_result(await toolkit.previews(result)))


def _end(entry: TaskEntry, result: ToolResult, answer: types.CallToolResult) -> None:
    first = answer.content[0] if answer.content else None
    line = first.text.splitlines()[0] if isinstance(first, types.TextContent) and first.text else result.status
    entry.finish("failed" if answer.is_error else "completed", line, answer)


async def _until_the_run_ends(toolkit: Toolkit, name: str, result: ToolResult,
                              progress: Callable[[float, str], Awaitable[None]]) -> ToolResult:
    """Keep waiting while the run goes on: a task has no client timeout to beat, only FLORA_RUN_TIMEOUT."""
    with anyio.move_on_after(toolkit.settings.run_timeout):
        while result.status in ("running", "pending") and result.run_id and not result.runs:
            resumed = await toolkit.call(GET_RUN, {"run_id": result.run_id}, progress=progress)
            result = resumed.model_copy(update={"tool": name})
    return result
