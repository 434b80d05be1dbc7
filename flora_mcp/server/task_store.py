"""MCP tasks, both wire shapes: one store of tasks and the background calls they follow.

A task is one `tools/call` run in the background through `Toolkit.call` (validation, caps, confirmation, journal: the
same path as a plain call), waiting past FLORA_MAX_WAIT until its FLORA run ends or FLORA_RUN_TIMEOUT. The wire shapes
make their answers from the same `TaskEntry` (task_entry.py, with the states it goes through): 2025-11-25 in tasks.py,
the 2026-07-28 `io.modelcontextprotocol/tasks` extension in tasks_ext.py.

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
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import mcp.types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from flora_mcp.core.confirm import Answer, Confirmation
from flora_mcp.core.results import ToolResult
from flora_mcp.core.runs import RootsProvider
from flora_mcp.core.tool_names import GET_RUN
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.core.translator import CallPhase, cancelled_task, combined, from_failure, interrupted_task
from flora_mcp.server.task_entry import (
    CANCELLED_RUNNING,
    CANCELLED_UNSENT,
    DEFAULT_TTL_MS,
    MAX_LIVE_TASKS,
    MAX_TTL_MS,
    ORPHANED,
    TERMINAL,
    TaskEntry,
    restored_entry,
    stored_task,
)
from flora_mcp.store import Store, StoredTask

__all__ = ["TaskStore"]

log = logging.getLogger("flora_mcp.server.tasks")

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
            self._saves.send_nowait((store, entry, stored_task(entry)))

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
        entry = restored_entry(stored)
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
