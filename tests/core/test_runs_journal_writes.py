"""The journal and the create request: the row exists before the request leaves, and a write that fails after it
left never hides the run.

What the agent was charged for reaches it whatever the store does after the create left: the run id, the outputs and
the cost, with the failure logged (one warning while the store keeps failing) and the server still serving. A SQLite
file whose disk fills degrades to memory (tests/core/test_journal_faults.py); these are the failures no engine
absorbs: a database gone away or read-only, a disk an engine cannot fall back from.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flora_mcp.core import journal as journal_module
from flora_mcp.core.runs import RunManager
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from flora_mcp.sandbox._faults import RecordedRequest
from tests.core.test_multiple import multiple_kit
from tests.support import FailingWrites, polls, posts, sandbox_config, settings_for

QR = "qr-code-generator"
ERRORS = {
    "disk-full": OSError(errno.ENOSPC, "No space left on device"),
    "database-gone": ConnectionError("server closed the connection unexpectedly"),
    "read-only": sqlite3.OperationalError("cannot execute UPDATE in a read-only transaction"),
}


def journal_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("flora_mcp")]


@pytest.mark.anyio
@pytest.mark.parametrize("error", list(ERRORS))
async def test_a_store_that_fails_every_write_after_the_create_left_never_hides_the_run(
        sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, error: str) -> None:
    broken = True
    store = FailingWrites(str(tmp_path / "runs.sqlite3"), error=ERRORS[error],
                          failing=lambda: broken and bool(sandbox.requests_for("create_technique_run")))
    async with Toolkit(settings_for(sandbox, session_budget=1.0), journal=store) as kit:
        with caplog.at_level(logging.DEBUG, logger="flora_mcp"):
            paid = await kit.call(QR, {"content": "paid for"})
            [run] = sandbox.runs
            # FLORA made and charged the run: the agent has all of it.
            assert (paid.status, paid.run_id, paid.error_code) == ("completed", run.run_id, None), paid.summary()
            assert store.failed >= 3, "the run id, the outputs and the charge were all to be written"
            assert [o.output_id for o in paid.outputs] == [o.output_id for o in run.outputs] and paid.outputs
            assert paid.charged_cost == run.charged_cost == 0.01
            warnings = journal_logs(caplog, logging.WARNING)
            assert len(warnings) == 1, warnings
            assert str(tmp_path / "runs.sqlite3") in warnings[0] and run.run_id in warnings[0]
            assert not journal_logs(caplog, logging.ERROR), "no failure of the call itself"
            # The row written before the create left is there; the charge that could not be written stays held.
            [create] = sandbox.requests_for("create_technique_run")
            row = await store.get_by_key(create.idempotency_key or "")
            assert row is not None and row.account == kit.account
            assert await kit.runs.held() == pytest.approx(0.01)

            # While no row can be written, a call sends nothing, and says so.
            refused = await kit.call(QR, {"content": "not sent"})
            assert posts(sandbox) == 1 and len(sandbox.runs) == 1
            assert (refused.status, refused.error_code, refused.run_id) == ("invalid", "journal_error", None)
            assert str(tmp_path / "runs.sqlite3") in (refused.error_message or "")
            assert "nothing was sent" in (refused.error_message or "")
            assert "Nothing was submitted" in (refused.next_step or "")

            # The store is back: the same server serves the next call in full.
            broken = False
            after = await kit.call(QR, {"content": "after the fix"})
            listed = await kit.call("flora_list_runs", {})
    assert after.status == "completed" and after.run_id == sandbox.runs[1].run_id
    assert listed.data is not None
    [latest, *_] = listed.data["runs"]
    assert (latest["run_id"], latest["status"], latest["charged_cost"]) == (after.run_id, "completed", 0.01)
    assert latest["outputs"] and latest["outputs"][0]["url"] == after.outputs[0].url


@pytest.mark.anyio
async def test_a_store_that_stops_answering_after_the_create_left_does_not_hold_up_the_answer(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # A database that is down: each write waits (PostgreSQL's pool: 30 s) before it fails. Shortened here, 10 to 1.
    monkeypatch.setattr(journal_module, "KEPT_WAIT", 0.2)
    monkeypatch.setattr(journal_module, "KEPT_WAIT_FAILING", 0.02)
    store = FailingWrites(str(tmp_path / "runs.sqlite3"), error=ConnectionError("connection timed out"), stall=2.0,
                          failing=lambda: bool(sandbox.requests_for("create_technique_run")))
    async with Toolkit(settings_for(sandbox), journal=store) as kit:
        with caplog.at_level(logging.WARNING, logger="flora_mcp"):
            result = await kit.call(QR, {"content": "paid for"})
    [run] = sandbox.runs
    assert (result.status, result.run_id) == ("completed", run.run_id) and result.outputs
    # Every write after the create was tried, and none was waited for to the end.
    assert store.failed >= 3 and store.abandoned == store.failed
    [warning] = [m for m in journal_logs(caplog, logging.WARNING) if "goes on" in m]
    assert "TimeoutError" in warning and run.run_id in warning


@pytest.mark.anyio
async def test_a_store_that_fails_while_the_run_is_polled_still_gives_its_outputs(tmp_path: Path) -> None:
    # The run id was written; what follows (its status, outputs, charge, the hold's end) is lost.
    async with serve_sandbox(sandbox_config(run_delay=0.3)) as box:
        store = FailingWrites(str(tmp_path / "runs.sqlite3"), error=ERRORS["database-gone"],
                              failing=lambda: bool(box.requests_for("get_technique_run")))
        async with Toolkit(settings_for(box), journal=store) as kit:
            result = await kit.call(QR, {"content": "polled"})
            rows = await kit.runs.recent()
    [run] = box.runs
    assert store.failed >= 2 and polls(box) >= 1
    assert result.status == "completed" and result.run_id == run.run_id and result.outputs
    assert result.charged_cost == 0.01
    assert [(r.run_id, r.status) for r in rows] == [(run.run_id, "pending")]


class ReadOnlyOnCreate(list[RecordedRequest]):
    """The sandbox's request log, turning the PostgreSQL database read-only (and dropping its connections) the moment
    a create request arrives, while `armed`: a failover to a standby, as the journal sees it."""

    def __init__(self, admin_url: str, database: str) -> None:
        super().__init__()
        self.admin_url, self.database = admin_url, database
        self.armed = True

    def set_read_only(self, on: bool) -> None:
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        with psycopg.connect(self.admin_url, autocommit=True) as db:
            db.execute(f'ALTER DATABASE "{self.database}" {setting}')
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                       (self.database,))

    def append(self, record: RecordedRequest) -> None:
        if self.armed and record.route == "create_technique_run":
            self.armed = False
            self.set_read_only(True)
        super().append(record)


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_postgresql_database_gone_read_only_after_the_create_left_never_hides_the_run(
        sandbox: Sandbox, postgres_url: str, postgres_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    log = ReadOnlyOnCreate(postgres_server.url(), postgres_url.rsplit("/", 1)[1])
    sandbox.state.requests = log
    async with Toolkit(settings_for(sandbox, journal=postgres_url)) as kit:
        with caplog.at_level(logging.WARNING, logger="flora_mcp"):
            paid = await kit.call(QR, {"content": "paid for"})
            refused = await kit.call(QR, {"content": "not sent"})
        log.set_read_only(False)
        after = await kit.call(QR, {"content": "after the failover"})
        listed = await kit.call("flora_list_runs", {})
    first, second = sandbox.runs
    assert (paid.status, paid.run_id, paid.charged_cost) == ("completed", first.run_id, 0.01) and paid.outputs
    assert [m for m in journal_logs(caplog, logging.WARNING) if "the call goes on" in m][0].count(first.run_id) == 1
    assert len([r for r in caplog.records if r.name == "flora_mcp.core.journal" and "goes on" in r.getMessage()]) == 1
    assert (refused.error_code, refused.run_id) == ("journal_error", None) and posts(sandbox) == 2
    assert after.status == "completed" and after.run_id == second.run_id
    assert listed.data is not None and listed.data["runs"][0]["run_id"] == second.run_id


# The row before the request ------------------------------------------------------------------------------------


class JournalAtArrival(list[RecordedRequest]):
    """The sandbox's request log, reading the journal file at the moment each create request arrives (before its
    handler runs): what FLORA could act on, against what the journal held by then."""

    def __init__(self, journal: Path) -> None:
        super().__init__()
        self.journal = journal
        self.rows: list[tuple[Any, ...] | None] = []

    def append(self, record: RecordedRequest) -> None:
        if record.route in ("create_technique_run", "create_run"):
            with sqlite3.connect(self.journal) as db:
                self.rows.append(db.execute("SELECT idempotency_key, status, run_id, tool FROM runs WHERE "
                                            "idempotency_key = ?", (record.idempotency_key,)).fetchone())
        super().append(record)


@pytest.mark.anyio
async def test_the_journal_row_exists_before_each_create_request_leaves(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    log = JournalAtArrival(path)
    sandbox.state.requests = log
    sandbox.faults.inject(route="create_technique_run", status=503, when="after")  # and on a retry of the same key
    async with Toolkit(settings_for(sandbox, journal=str(path))) as kit:
        lost = await kit.call(QR, {"content": "its first answer is lost"})
        plain = await kit.call(QR, {"content": "plain"})
    async with Toolkit(settings_for(sandbox, journal=str(path), workspace_id="ws_sandbox")) as kit:
        top_level = await kit.call(QR, {"content": "the top-level route"})
    several = await multiple_kit(sandbox, {QR: {"content"}}, journal=str(path))
    try:
        concurrent = await several.call(QR, {"content": ["a", "b", "c"]})  # three creates at once, a row each
    finally:
        await several.aclose()
    creates = [r for r in log if r.route in ("create_technique_run", "create_run")]
    assert [r.route for r in creates] == ["create_technique_run"] * 3 + ["create_run"] + ["create_technique_run"] * 3
    assert lost.status == plain.status == top_level.status == concurrent.status == "completed"
    # Every create, the retry of a lost answer too, found its row written and not yet answered.
    assert [row[:3] if row else None for row in log.rows] == [
        (r.idempotency_key, "submitting", None) for r in creates]
    assert {row[3] for row in log.rows if row} == {QR}


@pytest.mark.anyio
async def test_a_run_of_several_that_cannot_get_its_row_is_not_sent_and_the_others_keep_their_outputs(
        sandbox: Sandbox, tmp_path: Path) -> None:
    holds: list[str] = []

    class HoldsFail(FailingWrites):
        """Only the first run's hold can be written: the other runs of the call stop before their create."""

        async def _transact(self, steps: Any) -> list[list[tuple[Any, ...]]]:
            if any("INSERT INTO budget_holds" in step.sql and str(step.params[0]).startswith("run-")
                   for step in steps):
                holds.append("hold")
            return await super()._transact(steps)

    store = HoldsFail(str(tmp_path / "runs.sqlite3"), error=ERRORS["database-gone"], failing=lambda: len(holds) > 1)
    kit = await multiple_kit(sandbox, {QR: {"content"}}, journal=":memory:")
    kit.runs = RunManager(kit.client, store, kit.settings, account=kit.account, media=kit.media)
    try:
        result = await kit.call(QR, {"content": ["one", "two", "three"]})
    finally:
        await kit.aclose()
        await store.aclose()
    [run] = sandbox.runs
    assert posts(sandbox) == 1
    [made] = [r for r in result.runs if r.run_id]
    assert made.run_id == run.run_id and made.status == "completed" and made.outputs
    assert [o.url for o in result.outputs] == [o.url for o in made.outputs]
    refused = [r for r in result.runs if not r.run_id]
    assert [r.error_code for r in refused] == ["journal_error", "journal_error"]
    assert all("nothing was sent" in (r.error_message or "") for r in refused)
