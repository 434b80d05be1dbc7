"""MCP task state, remembered uploads and the schema, on both engines.

A task's first final state stays whichever process writes next; tasks and uploads are each account's own; the schema
is made once and taken up again, also when several processes open a fresh database at the same moment.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from flora_mcp.store import RememberedAsset, Store, StoredTask, open_store

pytestmark = pytest.mark.anyio


def task(status: str, *, account: str = "alice", updated: str = "2026-12-02T10:00:00Z", ttl_ms: int = 60_000,
         result: dict[str, object] | None = None) -> StoredTask:
    return StoredTask(task_id="task_1", account=account, shape="ext", tool="cctv-cam", status=status,
                      message=f"the run is {status}", created_at="2026-12-02T10:00:00Z", updated_at=updated,
                      ttl_ms=ttl_ms, poll_ms=1000, run_ids=["run_1"], result=result)


async def test_a_task_written_by_one_process_is_read_by_another_and_its_final_state_stays(
    store_location: str,
) -> None:
    one, two = open_store(store_location), open_store(store_location)
    assert await one.save_task(task("working"))
    assert await two.save_task(task("completed", updated="2026-12-02T10:01:00Z", result={"status": "completed"}))
    assert not await one.save_task(task("working", updated="2026-12-02T10:02:00Z"))  # a late writer loses
    seen = await one.load_task("alice", "task_1")
    assert seen is not None and (seen.status, seen.result, seen.run_ids) == ("completed", {"status": "completed"},
                                                                               ["run_1"])
    assert await two.load_task("bob", "task_1") is None  # another principal's task does not exist for bob
    await one.aclose()
    await two.aclose()


async def test_a_cancelled_task_stays_cancelled(store_location: str) -> None:
    store = open_store(store_location)
    assert await store.save_task(task("working"))
    assert await store.save_task(task("cancelled", updated="2026-12-02T10:01:00Z"))
    assert not await store.save_task(task("completed", updated="2026-12-02T10:02:00Z"))
    seen = await store.load_task("alice", "task_1")
    assert seen is not None and seen.status == "cancelled"
    await store.aclose()


async def test_a_task_is_read_back_as_written_and_kept_for_its_ttl_or_at_least_an_hour(store_location: str) -> None:
    store = open_store(store_location)
    long, short = replace(task("working", ttl_ms=7_200_000), task_id="task_long"), task("working", ttl_ms=60_000)
    before = time.time()
    assert await store.save_task(long) and await store.save_task(short)
    after = time.time()
    assert await store.load_task("alice", "task_long") == long and await store.load_task("alice", "task_1") == short
    rows = await store._rows("SELECT task_id, expires_at FROM mcp_tasks ORDER BY task_id")
    (_, short_expires), (_, long_expires) = rows
    assert before + 7200.0 <= long_expires <= after + 7200.0  # its ttl (ms), when over an hour
    assert before + 3600.0 <= short_expires <= after + 3600.0  # an hour at least
    await store.aclose()


async def test_a_remembered_upload_is_the_accounts_own_and_can_be_forgotten(store_location: str) -> None:
    one, two = open_store(store_location), open_store(store_location)
    asset = RememberedAsset("ast_1", "https://cdn.test/a.jpg", 300_000, "image/jpeg")
    await one.asset_put("alice", "ws_1", "ab" * 32, asset)
    assert await two.asset_get("alice", "ws_1", "ab" * 32) == asset
    assert await two.asset_get("alice", "ws_2", "ab" * 32) is None
    assert await two.asset_get("bob", "ws_1", "ab" * 32) is None
    newer = RememberedAsset("ast_2", "https://cdn.test/b.jpg", 300_000, "image/jpeg")
    await two.asset_put("alice", "ws_1", "ab" * 32, newer)
    assert await one.asset_get("alice", "ws_1", "ab" * 32) == newer
    await one.asset_forget("alice", "ws_1", "ab" * 32)
    assert await two.asset_get("alice", "ws_1", "ab" * 32) is None
    await one.aclose()
    await two.aclose()


async def versions(store: Store) -> list[int]:
    return [int(row[0]) for row in await store._rows("SELECT version FROM schema_version ORDER BY version")]


async def test_the_schema_is_made_once_and_taken_up_again(store_location: str) -> None:
    first = open_store(store_location)
    await first.open()
    made = await versions(first)
    assert made == list(range(1, len(made) + 1)) and made
    await first.aclose()
    again = open_store(store_location)
    await again.open()
    assert await versions(again) == made
    await again.aclose()


async def test_processes_opening_a_fresh_database_at_once_apply_each_migration_once(store_location: str) -> None:
    stores = [open_store(store_location) for _ in range(5)]
    with anyio.fail_after(120):  # without the migration lock they deadlock or collide; never hang the suite
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.open)
    made = await versions(stores[0])
    assert made == list(range(1, len(made) + 1))
    for store in stores:
        await store.record(idempotency_key=f"k{id(store)}", account="alice", tool="t", technique_id="tech",
                           technique_slug=None, technique_name="T", inputs={}, run_cost=None)
    assert await stores[-1].count("alice") == 5
    for store in stores:
        await store.aclose()


async def test_spend_is_summed_from_indexes_that_hold_the_cost(store_location: str) -> None:
    store = open_store(store_location)
    await store.open()
    if store_location.startswith("postgres"):
        rows = await store._rows("SELECT indexname FROM pg_indexes WHERE tablename = 'runs'")
    else:
        rows = await store._rows("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'")
    names = {str(row[0]) for row in rows}
    await store.aclose()
    assert {"runs_by_session_cost", "runs_by_time_cost"} <= names
    assert not {"runs_by_session", "runs_by_time"} & names  # what they replace: one index to write, not two


async def test_a_journal_from_before_the_spend_indexes_takes_them_and_keeps_its_runs(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    from flora_mcp.store.schema import SQLITE

    path = tmp_path / "runs.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, statements in enumerate(SQLITE[:2], start=1):
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        db.execute("INSERT INTO runs (idempotency_key, account, tool, technique_id, technique_name, status, inputs, "
                   "created_at, updated_at, budget_session, charged_cost) VALUES ('k', 'alice', 't', 'tech', 'T', "
                   "'completed', '{}', 1, 1, 'session-1', 0.25)")
        db.commit()
    store = open_store(str(path))
    await store.open()
    assert await versions(store) == list(range(1, len(SQLITE) + 1))
    plan = " ".join(str(row) for row in await store._rows(
        "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(charged_cost), 0) FROM runs WHERE budget_session = 'session-1'"))
    assert "COVERING INDEX runs_by_session_cost" in plan, plan  # the sum reads the index alone
    assert [tuple(r) for r in await store._rows("SELECT idempotency_key, charged_cost FROM runs")] == [("k", 0.25)]
    await store.aclose()
