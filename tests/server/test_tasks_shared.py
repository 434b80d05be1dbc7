"""MCP tasks on a shared store (PostgreSQL), two replicas in one process: whichever gets `tasks/get`, `tasks/result`
or `tasks/cancel` gives the same answer, from the one row; the first final state written stays."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from flora_mcp.server.task_entry import TaskEntry
from flora_mcp.server.task_store import TaskStore
from flora_mcp.server.tasks import TASKS_VERSION
from tests.support import sandbox_config, settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

QR = "qr-code-generator"


@pytest.fixture
async def slow_sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(run_delay=1.5)) as box:
        yield box


async def settled(store: TaskStore, kit: Toolkit, task_id: str, status: str) -> TaskEntry:
    with anyio.fail_after(30):
        while (entry := await store.get(kit, task_id, TASKS_VERSION)).status != status:
            await anyio.sleep(0.05)
    return entry


async def test_a_task_run_by_one_replica_is_answered_by_the_other(slow_sandbox: Sandbox, postgres_url: str) -> None:
    settings = settings_for(slow_sandbox, database_url=postgres_url)
    async with Toolkit(settings) as kit_a, Toolkit(settings) as kit_b:
        a, b = TaskStore(), TaskStore()
        async with a.serve(), b.serve():
            task = a.start(kit_a, QR, {"content": "shared"}, ttl_ms=None, shape=TASKS_VERSION, can_ask=False)
            with anyio.fail_after(10):
                while not (await kit_a.journal.load_task(kit_a.account, task.task_id)):
                    await anyio.sleep(0.02)
            seen = await b.get(kit_b, task.task_id, TASKS_VERSION)  # B never ran it: it reads the row
            assert seen.mirror and seen.status == "working"
            with anyio.fail_after(30):
                await seen.done.wait()  # what tasks/result waits on, on B
            await task.done.wait()
            assert seen.status == task.status == "completed"
            assert seen.result is not None and seen.result == task.result
            assert len(slow_sandbox.runs) == 1  # B followed the row, not the run: one run, never a second


async def test_a_task_cancelled_through_one_replica_is_cancelled_on_the_other(slow_sandbox: Sandbox,
                                                                             postgres_url: str) -> None:
    settings = settings_for(slow_sandbox, database_url=postgres_url)
    async with Toolkit(settings) as kit_a, Toolkit(settings) as kit_b:
        a, b = TaskStore(), TaskStore()
        async with a.serve(), b.serve():
            task = a.start(kit_a, QR, {"content": "cancel me"}, ttl_ms=None, shape=TASKS_VERSION, can_ask=False)
            with anyio.fail_after(10):
                while not (stored := await kit_a.journal.load_task(kit_a.account, task.task_id)) or not stored.run_ids:
                    await anyio.sleep(0.02)
            cancelled = await b.cancel(kit_b, task.task_id, TASKS_VERSION)
            assert cancelled.status == "cancelled"
            with anyio.fail_after(30):
                await task.done.wait()  # A, asked nothing meanwhile, saw its run end and wrote "completed" late
            on_a = await settled(a, kit_a, task.task_id, "cancelled")  # refused: A takes the row's final state
            assert on_a.result == cancelled.result
            row = await kit_a.journal.load_task(kit_a.account, task.task_id)
            assert row is not None and row.status == "cancelled"
            assert (await b.get(kit_b, task.task_id, TASKS_VERSION)).status == "cancelled"
