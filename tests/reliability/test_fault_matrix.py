"""Every step x every fault: at most one run per call, the run id never lost, and a success or a clear error.

The journal is a step too: its writes fail before the create (the budget check, the row) or after it left (the run
id, the outputs, the charge), on a full disk under SQLite (which goes on in memory) or in a store no engine absorbs (a
database gone away). And the process itself is a step: SIGKILLed once the create left and before its answer came,
then started again on the same journal, which finds the run on FLORA (start-up and flora_list_runs reconcile).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIError, FloraError
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.core.results import ToolResult
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from flora_mcp.store import SQLiteStore, Store
from tests.support import (
    TEST_KEY,
    FailingWrites,
    FullDisk,
    kill_during_create,
    sandbox_config,
    sandbox_env,
    settings_for,
    stdio_session,
)

REQUEST_TIMEOUT = 0.5
STEPS = {
    "list": "list_techniques",
    "retrieve": "get_technique",
    "create": "create_technique_run",
    "poll": "get_technique_run",
}
FAULTS: dict[str, dict[str, Any]] = {
    "429": {"kind": "status", "status": 429, "code": "rate_limited", "retry_after": 0},
    "500": {"kind": "status", "status": 500, "code": "unknown_error"},
    "502": {"kind": "status", "status": 502, "code": "unknown_error"},
    "503": {"kind": "status", "status": 503, "code": "unknown_error"},
    "reset": {"kind": "drop"},
    "stall": {"kind": "stall", "seconds": REQUEST_TIMEOUT * 3},
    "html": {"kind": "html"},
    "truncated": {"kind": "truncated"},
    "duplicate": {"kind": "status", "status": 409, "code": "idempotency_duplicate"},
}
# A read has no side effect to lose; a create is tried both ways: refused before, and made but its answer lost.
CELLS = [(step, fault, "before") for step in STEPS for fault in FAULTS] + [
    ("create", fault, "after") for fault in FAULTS
]
JOURNAL_FAULTS = ("disk-full", "store-fails")
JOURNAL_CELLS = [("journal", fault, when) for fault in JOURNAL_FAULTS for when in ("before", "after")]
MATRIX: dict[tuple[str, str, str], str] = {}
TECHNIQUE = "find-and-replace-text"
ARGS = {"text": "hello world", "find": "world", "replace": "FLORA"}


@asynccontextmanager
async def fast_toolkit(box: Sandbox, journal: Store | None = None) -> AsyncIterator[Toolkit]:
    client = FloraClient(api_key=TEST_KEY, base_url=box.base_url, timeout=REQUEST_TIMEOUT,
                         retry=RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05))
    async with client, Toolkit(settings_for(box, request_timeout=REQUEST_TIMEOUT), client=client,
                               journal=journal) as kit:
        yield kit


def outcome(result: ToolResult) -> str:
    return result.status if not result.error_code else f"{result.status}:{result.error_code}"


@pytest.mark.anyio
@pytest.mark.parametrize(("step", "fault", "when"), CELLS, ids=[f"{s}-{f}-{w}" for s, f, w in CELLS])
async def test_fault(step: str, fault: str, when: str) -> None:
    await run_cell(step, fault, when)


async def run_cell(step: str, fault: str, when: str) -> None:
    """One cell: its assertions, and its outcome recorded in MATRIX."""
    async with serve_sandbox(sandbox_config(estimate_scale=0.0)) as box:
        box.faults.inject(route=STEPS[step], when=when, count=1, **FAULTS[fault])
        try:
            async with fast_toolkit(box) as kit:
                result = await kit.call(TECHNIQUE, ARGS)
                journal = await kit.runs.recent()
        except FloraError as exc:
            # Only the catalog steps may stop the toolkit, and then with a message naming what failed.
            assert step in ("list", "retrieve")
            assert isinstance(exc, APIError) and exc.endpoint.startswith("GET /techniques") and exc.message
            assert not box.requests_for("create_technique_run")
            MATRIX[(step, fault, when)] = f"catalog error: {type(exc).__name__}"
            return
        created = [r for r in box.runs if r.api_key == TEST_KEY]
        assert len(created) <= 1, "a tool call created more than one paid run"
        if created:
            run_id = created[0].run_id
            assert result.run_id == run_id or any(e.run_id == run_id for e in journal), "run id lost"
        if result.status == "completed":
            assert result.outputs and result.charged_cost is not None
        else:
            assert result.is_error and result.error_code and result.error_message and result.next_step
        MATRIX[(step, fault, when)] = outcome(result)


@pytest.mark.anyio
@pytest.mark.parametrize(("step", "fault", "when"), JOURNAL_CELLS, ids=[f"{s}-{f}-{w}" for s, f, w in JOURNAL_CELLS])
async def test_journal_fault(step: str, fault: str, when: str) -> None:
    await run_journal_cell(fault, when)


def failing_store(path: Path, fault: str, failing: Callable[[], bool]) -> Store:
    if fault == "store-fails":
        return FailingWrites(str(path), failing=failing, error=ConnectionError("server closed the connection"))
    store = SQLiteStore(str(path))
    store._db = FullDisk(store._db, allowed=0, error=sqlite3.OperationalError(  # type: ignore[assignment]
        "database or disk is full"), full=failing)
    return store


async def run_journal_cell(fault: str, when: str) -> None:
    """One journal cell: its writes fail from the start ("before") or once the create reached FLORA ("after")."""
    with tempfile.TemporaryDirectory() as folder:
        async with serve_sandbox(sandbox_config(estimate_scale=0.0)) as box:
            def failing() -> bool:
                return when == "before" or bool(box.requests_for("create_technique_run"))

            store = failing_store(Path(folder) / "runs.sqlite3", fault, failing)
            try:
                async with fast_toolkit(box, store) as kit:
                    result = await kit.call(TECHNIQUE, ARGS)
                    again = await kit.call(TECHNIQUE, ARGS)  # the server goes on serving
            finally:
                await store.aclose()
    created = [r for r in box.runs if r.api_key == TEST_KEY]
    assert len(created) <= 2 and len(box.requests_for("create_technique_run")) == len(created)
    if result.status == "completed":
        assert result.run_id == created[0].run_id, "run id lost"
        assert result.outputs and result.charged_cost is not None
    else:
        # Only a store that fails before anything was sent may fail the call, and it says nothing was sent.
        assert (fault, when, created) == ("store-fails", "before", [])
        assert result.status == "invalid" and result.error_code == "journal_error" and result.next_step
    # SQLite goes on in memory; a store that takes no row refuses the next call, nothing sent, until it is back.
    assert outcome(again) == ("completed" if fault == "disk-full" else "invalid:journal_error")
    assert len(created) == {"disk-full": 2, "store-fails": 0 if when == "before" else 1}[fault]
    MATRIX[("journal", fault, when)] = outcome(result)


KILLED_CELL = ("process", "sigkill", "after")


@pytest.mark.anyio
async def test_process_killed_after_the_post() -> None:
    await run_killed_cell()


async def run_killed_cell() -> None:
    """A server killed while FLORA holds its create's answer; restarted, it lists the run and reads its outputs."""
    with tempfile.TemporaryDirectory() as folder:
        async with serve_sandbox(sandbox_config(estimate_scale=0.0)) as box:
            env = sandbox_env(box, FLORA_JOURNAL=str(Path(folder) / "runs.sqlite3"), FLORA_POLL_INTERVAL="0.1")
            run_id = await kill_during_create(box, env, TECHNIQUE, ARGS)
            async with stdio_session([], env) as (session, _):
                listed = await session.call_tool("flora_list_runs", {})
                rows = (listed.structured_content or {})["data"]["runs"]
                read = await session.call_tool("flora_get_run", {"run_id": run_id, "wait_seconds": 10})
            data = read.structured_content or {}
    assert [(r["run_id"], r["status"] in ("pending", "running", "completed")) for r in rows] == [(run_id, True)]
    assert data["status"] == "completed" and data["outputs"] and data["run_id"] == run_id
    assert len(box.runs) == 1 and len(box.requests_for("create_technique_run")) == 1, "submitted again"
    MATRIX[KILLED_CELL] = data["status"]


@pytest.mark.anyio
async def test_print_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the whole matrix past pytest's capture, running here the cells not run yet (this test run alone)."""
    for step, fault, when in CELLS:
        if (step, fault, when) not in MATRIX:
            await run_cell(step, fault, when)
    for _, fault, when in JOURNAL_CELLS:
        if ("journal", fault, when) not in MATRIX:
            await run_journal_cell(fault, when)
    if KILLED_CELL not in MATRIX:
        await run_killed_cell()
    ran = {cell: MATRIX.get(cell, "not run") for cell in [*CELLS, *JOURNAL_CELLS, KILLED_CELL]}
    width = max(len(f"{s} {f} {w}") for s, f, w in ran)
    lines = [f"{f'{s} {f} {w}':<{width}}  {result}" for (s, f, w), result in ran.items()]
    with capsys.disabled():
        print("\nfault matrix (step fault when -> outcome)\n" + "\n".join(lines))  # noqa: T201
    assert set(MATRIX) == {*CELLS, *JOURNAL_CELLS, KILLED_CELL}, "a cell recorded no outcome"
    # Transient faults on reads and refused creates are absorbed by retries.
    for step in STEPS:
        for fault in ("429", "500", "502", "503", "reset", "stall", "html", "truncated"):
            assert MATRIX[(step, fault, "before")] == "completed", (step, fault)
    # A create whose answer was lost is recovered, never submitted twice.
    for fault in ("500", "502", "503", "reset", "stall", "html", "truncated", "duplicate"):
        assert MATRIX[("create", fault, "after")] == "completed", fault
    # A journal write that fails never hides a run; only a store that cannot take the row refuses, nothing sent.
    assert [MATRIX[cell] for cell in JOURNAL_CELLS] == ["completed", "completed", "invalid:journal_error", "completed"]
    # A process killed after the POST left: its run is found after the restart, never submitted again.
    assert MATRIX[KILLED_CELL] == "completed"
