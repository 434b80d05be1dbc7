"""The budget in the store, on both engines: one atomic check-and-reserve, holds per run, charges settled once.

Two `Store` objects on one location stand for two processes (replicas) sharing a database: whatever interleaving
their concurrent admissions take, they never reserve past a budget.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from flora_mcp.store import Store, open_store

pytestmark = pytest.mark.anyio

DAY = 0.0  # every row counts for "today" in these tests


async def admit(store: Store, amount: float, *, scope: str = "alice-session", account: str = "alice",
                session: float | None = None, daily: float | None = None, lease: float = 300.0) -> str | None:
    _, admission = await store.admit(scope=scope, account=account, amount=amount, session_budget=session,
                                     daily_budget=daily, day_start=DAY, lease=lease)
    return admission.reservation_id


async def run_row(store: Store, key: str, account: str = "alice") -> None:
    await store.record(idempotency_key=key, account=account, tool="cctv-cam", technique_id="tech_1",
                       technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={}, run_cost=0.01)


@pytest.mark.parametrize("budget", ["session", "daily"])
async def test_concurrent_admissions_from_several_stores_never_pass_the_budget(store_location: str,
                                                                               budget: str) -> None:
    stores = [open_store(store_location) for _ in range(4)]
    for store in stores:
        await store.open()
    granted: list[str] = []
    limits = {"session_budget": 0.05, "daily_budget": None} if budget == "session" else {
        "session_budget": None, "daily_budget": 0.05}

    async def ask(n: int) -> None:
        # The day's budget is the account's across sessions: each process has a session of its own.
        scope = "alice-session" if budget == "session" else f"process-{n % len(stores)}"
        _, admission = await stores[n % len(stores)].admit(scope=scope, account="alice", amount=0.01, day_start=DAY,
                                         lease=300.0, **limits)
        if admission.reservation_id is not None:
            granted.append(admission.reservation_id)

    async with anyio.create_task_group() as tg:
        for n in range(48):
            tg.start_soon(ask, n)
    for store in stores:
        await store.aclose()
    assert len(granted) == 5 and len(set(granted)) == 5


async def test_what_is_left_counts_charges_and_live_holds_and_a_call_that_fits_exactly_is_admitted(
    store_location: str,
) -> None:
    store = open_store(store_location)
    first = await admit(store, 0.03, session=0.05)
    assert first is not None
    _, refused = await store.admit(scope="alice-session", account="alice", amount=0.03, session_budget=0.05,
                                   daily_budget=None, day_start=DAY, lease=300.0)
    assert refused.reservation_id is None and refused.session_left == pytest.approx(0.02)
    assert await admit(store, 0.02, session=0.05) is not None  # exactly what is left
    await store.close_reservation(first)
    assert await admit(store, 0.03, session=0.05) is not None  # a closed reservation frees its amount
    await store.aclose()


async def test_a_reservation_left_by_a_process_that_died_frees_itself_at_the_end_of_its_lease(
    store_location: str,
) -> None:
    dead, alive = open_store(store_location), open_store(store_location)
    assert await admit(dead, 0.05, daily=0.05, lease=-1.0) is not None  # its lease is already over
    await dead.aclose()  # the process is gone without closing its reservation
    assert await admit(alive, 0.05, daily=0.05) is not None
    assert await admit(alive, 0.01, daily=0.05) is None  # the live one still counts
    await alive.aclose()


async def test_a_runs_hold_outlives_the_call_and_its_charge_is_settled_once(store_location: str) -> None:
    store = open_store(store_location)
    reservation = await admit(store, 0.04, account="alice", daily=0.05)
    assert reservation is not None
    await run_row(store, "k1")
    await store.hold(reservation, "k1", 0.04)
    await store.close_reservation(reservation)  # the call ended (a client gave up); the run goes on
    assert await admit(store, 0.02, daily=0.05) is None  # the run's hold still counts
    assert await store.settle("k1", 0.03) is None  # FLORA's charge: the hold gives way to the row's cost
    assert await store.settle("k1", 0.03) == pytest.approx(0.03)  # reported again: the cost it already had
    assert await store.charged_since("alice", DAY) == pytest.approx(0.03)
    assert await admit(store, 0.02, daily=0.05) is not None
    assert await admit(store, 0.01, daily=0.05) is None
    await store.aclose()


async def test_a_released_hold_frees_its_amount_and_other_accounts_are_not_counted(store_location: str) -> None:
    store = open_store(store_location)
    reservation = await admit(store, 0.05, account="alice", daily=0.05)
    assert reservation is not None
    await run_row(store, "k1")
    await store.hold(reservation, "k1", 0.05)
    await store.close_reservation(reservation)
    assert await admit(store, 0.05, scope="bob-session", account="bob", daily=0.05) is not None
    assert await admit(store, 0.01, daily=0.05) is None
    await store.release("k1")  # FLORA refused it, or it ended with nothing to charge
    assert await admit(store, 0.05, daily=0.05) is not None
    await store.aclose()


async def test_a_session_is_shared_by_its_scope_and_its_totals_are_read_back(store_location: str) -> None:
    one, two = open_store(store_location), open_store(store_location)
    session_one = (await one.admit(scope="alice-session", account="alice", amount=0.02, session_budget=0.05,
                                   daily_budget=None, day_start=DAY, lease=300.0))[0]
    session_two = (await two.admit(scope="alice-session", account="alice", amount=0.02, session_budget=0.05,
                                   daily_budget=None, day_start=DAY, lease=300.0))[0]
    other = (await two.admit(scope="bob-session", account="bob", amount=0.02, session_budget=0.05,
                             daily_budget=None, day_start=DAY, lease=300.0))[0]
    assert session_one == session_two != other  # replicas serving one principal share its session
    charged, held = await one.session_totals("alice-session")
    assert (charged, held) == (0.0, pytest.approx(0.04))
    await one.aclose()
    await two.aclose()


async def test_charges_before_the_day_do_not_count_against_it(store_location: str) -> None:
    store = open_store(store_location)
    await run_row(store, "old")
    await store.settle("old", 0.05)
    assert await store.charged_since("alice", time.time() + 60) == 0.0
    _, admission = await store.admit(scope="s", account="alice", amount=0.05, session_budget=None,
                                     daily_budget=0.05, day_start=time.time() + 60, lease=300.0)
    assert admission.reservation_id is not None
    await store.aclose()


async def test_a_runs_row_and_hold_are_one_step_and_its_end_writes_the_row_with_the_charge(
        store_location: str) -> None:
    # The steps a call makes as one transaction each (fewer round trips): the row with its hold, the run id with a
    # charge, the outputs with the charge or the hold's end, the reservation's end with the session's totals.
    store = open_store(store_location)
    scope = "alice-session"
    session, admission = await store.admit(scope=scope, account="alice", amount=0.05, session_budget=0.05,
                                           daily_budget=None, day_start=DAY, lease=300.0)
    reservation = admission.reservation_id
    assert reservation is not None
    for key in ("k1", "k2"):
        await store.record(idempotency_key=key, account="alice", tool="cctv-cam", technique_id="tech_1",
                           technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={}, run_cost=0.02,
                           budget_session=session, hold=(reservation, 0.02))
    assert await store.session_totals(scope) == (0.0, pytest.approx(0.05))  # two holds and what is left
    assert await store.write_run("k1", end_hold=True, run_id="run_1", status="pending", charged_cost=0.02) is None
    entry = await store.get_by_key("k1")
    assert entry is not None and (entry.run_id, entry.status, entry.charged_cost) == ("run_1", "pending", 0.02)
    assert await store.session_totals(scope) == (pytest.approx(0.02), pytest.approx(0.03))  # k2's, and what is left
    await store.update("k2", run_id="run_2", status="pending")
    assert await store.write_run("k2", end_hold=True, close=reservation, totals_of=scope, status="failed",
                                 error_code="boom", outputs=[]) == (pytest.approx(0.02), 0.0)
    entry = await store.get_by_key("k2")
    assert entry is not None and (entry.status, entry.error_code, entry.charged_cost) == ("failed", "boom", None)
    assert await store.close_reservation(reservation, totals_of=scope) == (pytest.approx(0.02), 0.0)
    assert await store.close_reservation(reservation) is None
    await store.aclose()


async def test_lapsed_reservations_are_swept_now_and_then_and_never_counted_meanwhile(
        store_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flora_mcp.store import base

    store = open_store(store_location)
    assert await admit(store, 0.05, daily=0.05, lease=-1.0) is not None  # lapsed at once: a process that died
    assert await admit(store, 0.05, daily=0.05) is not None  # not counted, though not swept yet (SWEEP_EVERY)
    assert await admit(store, 0.01, daily=0.05) is None
    rows = await store._rows("SELECT COUNT(*) FROM budget_holds")
    assert rows[0][0] == 2
    monkeypatch.setattr(base, "SWEEP_EVERY", 0.0)
    assert await admit(store, 0.01, daily=0.05) is None
    rows = await store._rows("SELECT COUNT(*) FROM budget_holds")
    assert rows[0][0] == 1  # the lapsed one is gone, the live one stays


async def test_a_session_idle_for_an_hour_ends_and_the_next_call_starts_a_new_one(tmp_path: Path) -> None:
    location = str(tmp_path / "runs.sqlite3")
    store = open_store(location)
    first = await store.admit(scope="alice-session", account="alice", amount=0.05, session_budget=0.05,
                              daily_budget=None, day_start=DAY, lease=300.0)
    assert first[1].reservation_id is not None
    await store.record(idempotency_key="k1", account="alice", tool="cctv-cam", technique_id="tech_1",
                       technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={}, run_cost=0.05,
                       budget_session=first[0])
    await store.hold(first[1].reservation_id, "k1", 0.05)
    await store.settle("k1", 0.05)  # the session's budget is spent
    assert (await admit(store, 0.01, session=0.05)) is None

    def idle(seconds: float) -> None:  # as if the session's last call was `seconds` ago
        with closing(sqlite3.connect(location)) as db, db:
            db.execute("UPDATE budget_sessions SET last_used = last_used - ?", (seconds,))

    idle(3000.0)  # 50 minutes: the same session, still spent
    assert (await admit(store, 0.01, session=0.05)) is None
    assert await store.session_totals("alice-session") == (pytest.approx(0.05), 0.0)
    idle(3700.0)  # over an hour: the session is over
    assert await store.session_totals("alice-session") == (0.0, 0.0)
    again = await store.admit(scope="alice-session", account="alice", amount=0.05, session_budget=0.05,
                              daily_budget=None, day_start=DAY, lease=300.0)
    assert again[1].reservation_id is not None and again[0] != first[0]  # a new session, a new budget
    await store.aclose()


async def test_what_is_left_is_never_below_zero(store_location: str) -> None:
    store = open_store(store_location)
    await run_row(store, "k1")
    await store.settle("k1", 0.08)  # FLORA charged more than the day's budget (a correction, a price change)
    _, refused = await store.admit(scope="s", account="alice", amount=0.01, session_budget=None,
                                   daily_budget=0.05, day_start=DAY, lease=300.0)
    assert refused.reservation_id is None and refused.daily_left == 0.0 and refused.session_left is None
    await store.aclose()


async def test_what_is_left_of_a_session_is_its_budget_less_its_charges_and_holds(store_location: str) -> None:
    store = open_store(store_location)
    session, first = await store.admit(scope="alice-session", account="alice", amount=0.04, session_budget=0.1,
                                       daily_budget=None, day_start=DAY, lease=300.0)
    assert first.reservation_id is not None
    await store.record(idempotency_key="k1", account="alice", tool="cctv-cam", technique_id="tech_1",
                       technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={}, run_cost=0.03,
                       budget_session=session, hold=(first.reservation_id, 0.03))
    await store.settle("k1", 0.03)  # charged 0.03; 0.01 still reserved by the open call
    _, refused = await store.admit(scope="alice-session", account="alice", amount=0.07, session_budget=0.1,
                                   daily_budget=None, day_start=DAY, lease=300.0)
    assert refused.reservation_id is None and refused.session_left == pytest.approx(0.06)
    await store.aclose()


async def test_a_runs_event_keeps_its_hold_unless_told_to_end_it(store_location: str) -> None:
    store = open_store(store_location)
    reservation = await admit(store, 0.05, daily=0.05)
    assert reservation is not None
    await run_row(store, "k1")
    await store.hold(reservation, "k1", 0.05)
    await store.close_reservation(reservation)
    await store.write_run("k1", run_id="run_1", status="running")  # progress, no charge yet: the hold stays
    assert await admit(store, 0.01, daily=0.05) is None
    await store.write_run("k1", end_hold=True, status="completed", charged_cost=0.02)
    assert await admit(store, 0.03, daily=0.05) is not None
    await store.aclose()


@pytest.mark.parametrize("budgets", [{}, {"session": 1.0}, {"daily": 1.0}, {"session": 1.0, "daily": 1.0}],
                         ids=["none", "session", "daily", "both"])
async def test_an_admission_sums_spend_only_for_the_budgets_that_are_set(tmp_path: Path,
                                                                        budgets: dict[str, float]) -> None:
    from flora_mcp.store.sqlite import SQLiteStore

    store = open_store(str(tmp_path / "runs.sqlite3"))
    assert isinstance(store, SQLiteStore)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # the writer thread's connection: every statement it runs
    try:
        assert await admit(store, 0.01, **budgets) is not None
    finally:
        await store.aclose()
    sums = " ".join(statements)
    # Each sum reads every run of the session (or of the account today): a call with no budget has no use for one.
    assert ("budget_session = (SELECT session" in sums) == ("session" in budgets)
    assert ("created_at >= " in sums) == ("daily" in budgets)
