"""SpendLedger alone: reservations, holds and charges, each dollar counted once (the toolkit-level tests are in
test_costs.py)."""

from __future__ import annotations

import pytest

from flora_mcp.api.models import Technique
from flora_mcp.core.budget import Reservation, SpendLedger
from flora_mcp.core.results import ToolResult

CCTV = Technique(technique_id="tech_cctv", slug="cctv-cam", name="CCTV Cam", run_cost=0.05, inputs=[])


def admitted(ledger: SpendLedger, runs: int = 1) -> Reservation:
    reservation = ledger.admit("cctv-cam", CCTV, runs)
    assert isinstance(reservation, Reservation)
    return reservation


def test_a_call_is_reserved_whole_then_held_run_by_run_until_charged() -> None:
    ledger = SpendLedger(max_cost_per_call=None, session_budget=1.0)
    reservation = admitted(ledger, runs=3)
    assert ledger.held == pytest.approx(0.15)
    ledger.hold(reservation, "k1")
    ledger.hold(reservation, "k2")
    assert ledger.held == pytest.approx(0.15) and reservation.left == pytest.approx(0.05)
    ledger.close(reservation)  # the third run was never submitted
    assert ledger.held == pytest.approx(0.10)
    assert ledger.charge("k1", 0.05, already=None) is True
    ledger.release("k2")  # FLORA refused k2's create
    assert ledger.session_spend == pytest.approx(0.05) and ledger.held == 0


def test_a_charge_reported_at_creation_and_again_at_the_end_counts_once() -> None:
    ledger = SpendLedger(max_cost_per_call=None, session_budget=None)
    ledger.hold(admitted(ledger), "k1")
    assert ledger.charge("k1", 0.05, already=None) is True
    assert ledger.charge("k1", 0.05, already=0.05) is False
    assert ledger.charge("k1", 0.07, already=0.05) is True  # FLORA corrected it: the difference counts
    assert ledger.charge("k1", None, already=0.07) is False
    assert ledger.session_spend == pytest.approx(0.07)


def test_a_run_charged_in_an_earlier_session_is_not_this_sessions_spend() -> None:
    ledger = SpendLedger(max_cost_per_call=None, session_budget=None)
    assert ledger.charge("old", 0.05, already=0.05) is False
    assert ledger.session_spend == 0


def test_the_caps_count_what_is_held_and_say_what_remains() -> None:
    ledger = SpendLedger(max_cost_per_call=0.5, session_budget=0.12)
    first, second = admitted(ledger), admitted(ledger)
    ledger.hold(first, "k1")
    ledger.hold(second, "k2")
    refused = ledger.admit("cctv-cam", CCTV, 1)  # 0.10 held, 0.02 left: a 0.05 run does not fit
    assert isinstance(refused, ToolResult) and refused.status == "invalid"
    assert refused.error_code == "cost_cap_exceeded" and "$0.02 of the session budget remains" in (
        refused.error_message or "")
    too_dear = SpendLedger(max_cost_per_call=0.04, session_budget=None).admit("cctv-cam", CCTV, 1)
    assert isinstance(too_dear, ToolResult) and "FLORA_MAX_COST_PER_CALL" in (too_dear.error_message or "")
    unpriced = CCTV.model_copy(update={"run_cost": None})
    assert isinstance(SpendLedger(max_cost_per_call=1.0, session_budget=None).admit("x", unpriced, 1), ToolResult)
