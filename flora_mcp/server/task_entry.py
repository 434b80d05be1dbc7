"""One MCP task's state (`TaskEntry`), shared by both wire shapes, and its row in the store.

    working -> input_required (the person is asked to confirm the price) -> working -> completed | failed
       \\-> cancelled (by the client: flora-mcp stops waiting; a submitted run goes on, and is charged)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import anyio
import mcp.types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from flora_mcp.core.confirm import Answer, Confirmation
from flora_mcp.core.polling import PollScheduler
from flora_mcp.store import StoredTask

__all__ = ["ANSWER_TIMEOUT", "DEFAULT_TTL_MS", "MAX_LIVE_TASKS", "TERMINAL", "TaskEntry", "TaskStatus", "now_iso",
           "restored_entry", "stored_task"]

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



def stored_task(entry: TaskEntry) -> StoredTask:
    result = None if entry.result is None else entry.result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return StoredTask(task_id=entry.task_id, account=entry.owner, shape=entry.shape, tool=entry.tool,
                      status=entry.status, message=entry.message, created_at=entry.created_at,
                      updated_at=entry.updated_at, ttl_ms=entry.ttl_ms, poll_ms=entry.poll_ms,
                      run_ids=list(entry.run_ids), result=result)


def restored_entry(stored: StoredTask) -> TaskEntry:
    entry = TaskEntry(task_id=stored.task_id, owner=stored.account, tool=stored.tool, shape=stored.shape,
                      ttl_ms=stored.ttl_ms, poll_ms=stored.poll_ms, message=stored.message,
                      created_at=stored.created_at, updated_at=stored.updated_at, run_ids=list(stored.run_ids))
    if stored.status in TERMINAL:
        entry.status = stored.status  # type: ignore[assignment]  # one of TERMINAL, written by stored_task
        entry.result = None if stored.result is None else types.CallToolResult.model_validate(stored.result)
        entry.done.set()
    return entry

