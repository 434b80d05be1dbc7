"""SpendLedger on the store, on both engines: reservations, holds and charges, each dollar counted once, the caps
checked against what every process holds (the toolkit-level tests are in test_costs.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flora_mcp.api.models import Technique
from flora_mcp.core.budget import Reservation, SpendLedger
from flora_mcp.core.results import ToolResult
from flora_mcp.store import Store, open_store

pytestmark = pytest.mark.anyio

CCTV = Technique(technique_id="tech_cctv", slug="cctv-cam", name="CCTV Cam", run_cost=0.05, inputs=[])


@pytest.fixture
async def store(store_location: str) -> AsyncIterator[Store]:
    store = open_store(store_location)
    await store.open()
    yield store
    await store.aclose()


def ledger_on(store: Store, scope: str = "acct/s1", **caps: float | None) -> SpendLedger:
    return SpendLedger(store, account="acct", scope=scope, max_cost_per_call=caps.get("max_cost_per_call"),
                       session_budget=caps.get("session_budget"), daily_budget=caps.get("daily_budget"))


async def admitted(ledger: SpendLedger, runs: int = 1) -> Reservation:
    reservation = await ledger.admit("cctv-cam", CCTV, runs, day_start=0.0)
    assert isinstance(reservation, Reservation), reservation
    return reservation


async def submitted(ledger: SpendLedger, reservation: Reservation, key: str) -> None:
    """What the run lifecycle does as a create leaves: the row, then the run's hold."""
    await ledger.store.record(idempotency_key=key, account="acct", tool="cctv-cam", technique_id=CCTV.technique_id,
                              technique_slug=CCTV.slug, technique_name=CCTV.name, inputs={}, run_cost=0.05,
                              budget_session=reservation.session)
    await ledger.hold(reservation, key)


async def test_a_call_is_reserved_whole_then_held_run_by_run_until_charged(store: Store) -> None:
    ledger = ledger_on(store, session_budget=1.0)
    reservation = await admitted(ledger, runs=3)
    assert await ledger.totals() == (0.0, pytest.approx(0.15))
    await submitted(ledger, reservation, "k1")
    await submitted(ledger, reservation, "k2")
    assert (await ledger.totals())[1] == pytest.approx(0.15) and reservation.left == pytest.approx(0.05)
    await ledger.close(reservation)  # the third run was never submitted
    assert (await ledger.totals())[1] == pytest.approx(0.10)
    assert await ledger.charge("k1", 0.05) is True
    await ledger.release("k2")  # FLORA refused k2's create
    assert await ledger.totals() == (pytest.approx(0.05), 0.0)


async def test_a_charge_reported_at_creation_and_again_at_the_end_counts_once(store: Store) -> None:
    ledger = ledger_on(store)
    await submitted(ledger, await admitted(ledger), "k1")
    assert await ledger.charge("k1", 0.05) is True
    assert await ledger.charge("k1", 0.05) is False
    assert await ledger.charge("k1", 0.07) is True  # FLORA corrected it: the corrected cost counts
    assert await ledger.charge("k1", None) is False
    assert await ledger.session_spend() == pytest.approx(0.07)


async def test_a_run_charged_in_an_earlier_session_is_not_this_sessions_spend(store: Store) -> None:
    earlier = ledger_on(store, scope="acct/earlier")
    await submitted(earlier, await admitted(earlier), "old")
    await earlier.charge("old", 0.05)
    now = ledger_on(store, scope="acct/now")
    assert await now.charge("old", 0.05) is False
    assert await now.session_spend() == 0 and await earlier.session_spend() == pytest.approx(0.05)


async def test_the_caps_count_what_is_held_and_say_what_remains(store: Store) -> None:
    ledger = ledger_on(store, max_cost_per_call=0.5, session_budget=0.12)
    first, second = await admitted(ledger), await admitted(ledger)
    await submitted(ledger, first, "k1")
    await submitted(ledger, second, "k2")
    refused = await ledger.admit("cctv-cam", CCTV, 1, day_start=0.0)  # 0.10 held, 0.02 left: 0.05 does not fit
    assert isinstance(refused, ToolResult) and refused.status == "invalid"
    assert refused.error_code == "cost_cap_exceeded" and "$0.02 of the session budget remains" in (
        refused.error_message or "")
    too_dear = await ledger_on(store, max_cost_per_call=0.04).admit("cctv-cam", CCTV, 1, day_start=0.0)
    assert isinstance(too_dear, ToolResult) and "FLORA_MAX_COST_PER_CALL" in (too_dear.error_message or "")
    unpriced = CCTV.model_copy(update={"run_cost": None})
    assert isinstance(await ledger_on(store, max_cost_per_call=1.0).admit("x", unpriced, 1, day_start=0.0),
                      ToolResult)
    assert isinstance(await ledger_on(store, session_budget=5.0).admit("x", unpriced, 1, day_start=0.0), ToolResult)


async def test_the_daily_budget_counts_every_session_of_the_account(store: Store) -> None:
    one = ledger_on(store, scope="acct/one", daily_budget=0.10)
    await submitted(one, await admitted(one), "k1")
    await one.charge("k1", 0.05)
    other = ledger_on(store, scope="acct/other", daily_budget=0.10)
    await admitted(other)  # 0.05 charged + 0.05 reserved: the day's 0.10 is used up
    refused = await other.admit("cctv-cam", CCTV, 1, day_start=0.0)
    assert isinstance(refused, ToolResult) and "FLORA_PRINCIPAL_BUDGET" in (refused.error_message or "")
    assert "$0.00 is left today" in (refused.error_message or "")


async def test_a_reservation_of_a_process_that_died_lapses(store: Store) -> None:
    dead = SpendLedger(store, account="acct", scope="acct", max_cost_per_call=None, session_budget=0.05,
                       lease=-1.0)  # its lease already over, as a replica that died long ago would leave it
    await admitted(dead)
    alive = ledger_on(store, scope="acct", session_budget=0.05)
    assert isinstance(await admitted(alive), Reservation)
    refused = await alive.admit("cctv-cam", CCTV, 1, day_start=0.0)
    assert isinstance(refused, ToolResult)  # its own reservation does not lapse


async def test_a_dead_processes_run_hold_is_settled_when_the_run_is_next_seen(store: Store) -> None:
    dead = ledger_on(store, scope="acct", session_budget=0.10)
    reservation = await admitted(dead)
    await submitted(dead, reservation, "orphan")  # the create left, then the process died
    assert (await dead.totals())[1] == pytest.approx(0.05)
    another = ledger_on(store, scope="acct", session_budget=0.10)  # another replica, the same principal
    await another.charge("orphan", 0.04)  # it polled the run: FLORA charged 0.04, the hold is settled
    assert await another.totals() == (pytest.approx(0.04), 0.0)


async def test_a_refusal_by_the_per_call_cap_says_what_the_session_has_left_after_charges_and_holds(
    store: Store,
) -> None:
    ledger = ledger_on(store, max_cost_per_call=0.5, session_budget=1.0)
    await submitted(ledger, await admitted(ledger), "charged")
    await ledger.charge("charged", 0.05)
    await submitted(ledger, await admitted(ledger), "held")  # 0.05 charged, 0.05 held: 0.90 left
    dear = CCTV.model_copy(update={"run_cost": 0.6})
    refused = await ledger.admit("cctv-cam", dear, 1, day_start=0.0)
    assert isinstance(refused, ToolResult) and refused.error_code == "cost_cap_exceeded"
    assert "FLORA_MAX_COST_PER_CALL" in (refused.error_message or "")
    assert "$0.90 of the session budget remains" in (refused.error_message or "")


async def test_the_daily_budget_refusal_names_itself_even_when_the_session_budget_has_exactly_the_price_left(
    store: Store,
) -> None:
    earlier = ledger_on(store, scope="acct/earlier")
    await submitted(earlier, await admitted(earlier), "k0")
    await earlier.charge("k0", 0.06)  # today's earlier session: 0.04 of the day's 0.10 is left
    ledger = ledger_on(store, scope="acct/now", session_budget=0.05, daily_budget=0.10)
    refused = await ledger.admit("cctv-cam", CCTV, 1, day_start=0.0)  # the session has 0.05 left: the day refuses
    assert isinstance(refused, ToolResult) and refused.status == "invalid"
    assert refused.error_code == "cost_cap_exceeded" and refused.technique is not None
    assert refused.error_message == ("This call costs $0.05, above what remains of FLORA_PRINCIPAL_BUDGET "
                                     "($0.10 a day): $0.04 is left today (UTC).")
    assert refused.next_step == ("Nothing was submitted. The budget renews at midnight UTC; ask the operator to "
                                 "raise it, or choose a cheaper call.")
    assert await ledger.totals() == (0.0, 0.0)  # a refused call holds nothing


async def test_a_call_of_unknown_price_is_refused_by_the_daily_budget_saying_so(store: Store) -> None:
    unpriced = CCTV.model_copy(update={"run_cost": None})
    refused = await ledger_on(store, daily_budget=5.0).admit("x", unpriced, 1, day_start=0.0)
    assert isinstance(refused, ToolResult) and refused.error_code == "cost_cap_exceeded"
    assert (refused.error_message or "").startswith("This call costs an unknown price, above what remains of "
                                                    "FLORA_PRINCIPAL_BUDGET ($5.00 a day): $5.00 is left today")


async def test_without_caps_a_call_of_unknown_or_zero_price_holds_nothing(store: Store) -> None:
    ledger = ledger_on(store)
    for price in (None, 0.0):
        technique = CCTV.model_copy(update={"run_cost": price})
        reservation = await ledger.admit("x", technique, 2, day_start=0.0)
        assert isinstance(reservation, Reservation)
        assert await ledger.totals() == (0.0, 0.0)  # flora_spend shows nothing held while it runs
        await submitted(ledger, reservation, f"k-{price}")
        assert await ledger.totals() == (0.0, 0.0)
        await ledger.close(reservation)


async def test_flora_spend_reports_spend_holds_and_totals_to_the_millionth(store: Store) -> None:
    ledger = ledger_on(store, max_cost_per_call=0.5, session_budget=2.0)
    await submitted(ledger, await admitted(ledger), "k1")
    await ledger.charge("k1", 0.1234567)
    odd = CCTV.model_copy(update={"run_cost": 0.0500004})
    reservation = await ledger.admit("cctv-cam", odd, 1, day_start=0.0)
    assert isinstance(reservation, Reservation)
    await submitted(ledger, reservation, "k2")
    report = await ledger.report([{"technique_name": "CCTV Cam", "charged": 0.1234567},
                                  {"technique_name": "Old", "charged": 0.2000004}])
    assert report == {"session_spend": 0.123457, "held": 0.05, "total_charged": 0.323457,
                      "by_technique": report["by_technique"],
                      "caps": {"max_cost_per_call": 0.5, "session_budget": 2.0},
                      "summary": "This session spent $0.1235."}
