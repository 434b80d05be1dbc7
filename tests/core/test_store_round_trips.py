"""How many store round trips a call makes: each is a hop to the store's writer (or a pooled connection) and back
through a busy event loop, so a call's writes are merged where their order allows (#17): the budget check; the row
with the run's hold, before the create leaves; the run id with FLORA's charge, as soon as it answers; the outputs
with the charge and the hold's end, the reservation's end and the session's spend for the result."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flora_mcp.core.runs import RunManager
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from flora_mcp.sandbox._faults import RecordedRequest
from flora_mcp.store import SQLiteStore
from flora_mcp.store.base import Step
from tests.support import settings_for

QR = "qr-code-generator"


class Counted(SQLiteStore):
    """A store that keeps the first statement of each transaction it is asked for."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.transactions: list[str] = []

    async def _transact(self, steps: Sequence[Step]) -> list[list[tuple[Any, ...]]]:
        self.transactions.append(" ".join(steps[0].sql.split()[:3]))
        return await super()._transact(steps)


class HoldAtArrival(list[RecordedRequest]):
    """The sandbox's request log, reading the journal file as each create arrives: its row and its run's hold."""

    def __init__(self, journal: Path) -> None:
        super().__init__()
        self.journal = journal
        self.seen: list[tuple[Any, ...]] = []

    def append(self, record: RecordedRequest) -> None:
        if record.route == "create_technique_run":
            with sqlite3.connect(self.journal) as db:
                self.seen.append(db.execute(
                    "SELECT runs.status, budget_holds.amount FROM runs JOIN budget_holds ON run_key = idempotency_key "
                    "WHERE idempotency_key = ?", (record.idempotency_key,)).fetchone())
        super().append(record)


@pytest.mark.anyio
async def test_a_call_makes_five_store_round_trips_and_its_hold_is_there_when_the_create_arrives(
        sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    log = HoldAtArrival(path)
    sandbox.state.requests = log
    store = Counted(str(path))
    async with Toolkit(settings_for(sandbox, session_budget=1.0), journal=store) as kit:
        await kit.call(QR, {"content": "the first, which also sweeps lapsed reservations"})
        store.transactions.clear()
        result = await kit.call(QR, {"content": "counted"})
        spent, held = await kit.runs.ledger.totals()
    first, run = sandbox.runs
    assert (result.status, result.run_id) == ("completed", run.run_id)
    assert log.seen == [("submitting", pytest.approx(0.01))] * 2
    assert store.transactions[:4] == [
        "INSERT INTO budget_sessions",  # the budget check and the call's reservation
        "INSERT INTO runs",  # the row and the run's hold
        "UPDATE runs SET",  # the run id and the charge FLORA answered the create with (the hold's end)
        "UPDATE runs SET",  # the outputs and the charge, the reservation's end and the session's spend
    ]
    assert len(store.transactions) == 5  # and the totals read above
    assert result.session_spend == spent == pytest.approx(first.charged_cost + run.charged_cost) and held == 0.0


@pytest.mark.anyio
async def test_a_call_of_several_runs_ends_its_reservation_after_the_last(sandbox: Sandbox, tmp_path: Path) -> None:
    # Not with the first run's end: a sibling may not have taken its share of the reservation yet, and its hold,
    # taken from what is left of the reservation, would be lost.
    from tests.core.test_multiple import multiple_kit

    store = Counted(str(tmp_path / "runs.sqlite3"))
    kit = await multiple_kit(sandbox, {QR: {"content"}}, journal=":memory:", session_budget=1.0)
    kit.runs = RunManager(kit.client, store, kit.settings, account=kit.account, media=kit.media)
    try:
        result = await kit.call(QR, {"content": ["one", "two", "three"]})
        spent, held = await kit.runs.ledger.totals()
    finally:
        await kit.aclose()
        await store.aclose()
    assert result.status == "completed" and len(sandbox.runs) == 3
    assert store.transactions[-2] == "DELETE FROM budget_holds"  # the reservation's end, after every run's
    assert result.session_spend == spent == pytest.approx(0.03) and held == 0.0
