"""The session's money: what was charged, what is held for runs not charged yet, and the caps, checked before sending.

A call's whole price is reserved in the same database step as the budget check (`Store.admit`), so concurrent calls,
in this process or in other replicas on the same database, cannot spend the same dollars twice. As each run's create
leaves, it takes its share of the reservation as a hold under its idempotency key; the hold ends when FLORA reports
the charge or the run ends (whichever process sees that first), or when FLORA refused the create. A create whose
outcome is unknown keeps its hold: the run may exist and be charged. Spend is read from the journal's charged costs,
so a charge reported twice (at creation and at the end) is counted once.

A budget session (what FLORA_SESSION_BUDGET counts) belongs to a scope: one process's own with SQLite, one principal's
across every replica with a shared database. It ends after an hour without a call (`SESSION_IDLE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flora_mcp.api.models import Technique
from flora_mcp.core.results import ToolResult, format_usd
from flora_mcp.core.translator import cost_refusal, refusal
from flora_mcp.store import Store
from flora_mcp.store.base import EPSILON

__all__ = ["Reservation", "SpendLedger"]

_UNPRICED = 1e18
"""What a call of unknown price asks for when a budget is set: more than any budget, so it is refused."""


@dataclass
class Reservation:
    """The price of one call's runs, reserved at the cost check and handed to each run as its create leaves."""

    reservation_id: str
    session: str
    per_run: float
    left: float
    closed: bool = False
    """Whether `SpendLedger.close` (or a run's last event, `run_event`) ended it."""


class SpendLedger:
    """One toolkit's spend, holds and reservations in the store, against FLORA_MAX_COST_PER_CALL,
    FLORA_SESSION_BUDGET and FLORA_PRINCIPAL_BUDGET.

    Args:
        account: the journal account (FLORA_PRINCIPAL_BUDGET counts its runs today, in UTC).
        scope: whose budget session this is (see the module's docstring).
        daily_budget: USD the account may be charged today (FLORA_PRINCIPAL_BUDGET), besides what is held.
        lease: seconds a call's reservation lasts at most, so one left by a process that died frees itself.
    """

    def __init__(self, store: Store, *, account: str, scope: str, max_cost_per_call: float | None,
                 session_budget: float | None, daily_budget: float | None = None, lease: float = 3600.0) -> None:
        self.store = store
        self.account = account
        self.scope = scope
        self.max_cost_per_call = max_cost_per_call
        self.session_budget = session_budget
        self.daily_budget = daily_budget
        self.lease = lease

    async def totals(self) -> tuple[float, float]:
        """This session's charges, and what it holds now (calls being submitted, runs not charged yet)."""
        return await self.store.session_totals(self.scope)

    async def session_spend(self) -> float:
        """USD FLORA charged for this session's runs."""
        return (await self.totals())[0]

    async def admit(self, tool: str, technique: Technique, runs: int, *, day_start: float) -> Reservation | ToolResult:
        """Reserve the price of `runs` runs of `technique`, or the refusal that names the cap it would break."""
        price = None if technique.run_cost is None else technique.run_cost * runs
        cap, budget, daily = self.max_cost_per_call, self.session_budget, self.daily_budget
        if cap is not None and (price is None or price > cap + EPSILON):
            remaining = None
            if budget is not None:
                spent, held = await self.totals()
                remaining = max(budget - spent - held, 0.0)
            return cost_refusal(tool, technique, price=price, cap_name="FLORA_MAX_COST_PER_CALL", cap=cap,
                                remaining=remaining)
        budgeted = budget is not None or daily is not None
        amount = (_UNPRICED if budgeted else 0.0) if price is None else price
        session, admission = await self.store.admit(
            scope=self.scope, account=self.account, amount=amount, session_budget=budget, daily_budget=daily,
            day_start=day_start, lease=self.lease)
        if admission.reservation_id is not None:
            return Reservation(admission.reservation_id, session, per_run=technique.run_cost or 0.0, left=amount)
        left = admission.session_left
        if budget is not None and left is not None and amount > left + EPSILON:
            return cost_refusal(tool, technique, price=price, cap_name="FLORA_SESSION_BUDGET", cap=budget,
                                remaining=left)
        assert daily is not None  # only a budget refuses a reservation
        daily_left = admission.daily_left or 0.0
        cost = "an unknown price" if price is None else format_usd(price)
        return refusal(tool, technique, f"This call costs {cost}, above what remains of FLORA_PRINCIPAL_BUDGET "
                       f"({format_usd(daily)} a day): {format_usd(daily_left)} is left today (UTC).",
                       code="cost_cap_exceeded",
                       next_step="Nothing was submitted. The budget renews at midnight UTC; ask the operator to raise "
                                 "it, or choose a cheaper call.")

    def share(self, reservation: Reservation) -> tuple[str, float]:
        """A run's create is about to leave: its share of the call's reservation, taken from what is left, as the
        `hold` that `Store.record` writes with the run's row."""
        share = min(reservation.per_run, reservation.left)
        reservation.left -= share
        return reservation.reservation_id, share

    async def hold(self, reservation: Reservation, key: str) -> None:
        """A run's create is leaving: its share of the call's reservation is held under its key."""
        reservation_id, share = self.share(reservation)
        await self.store.hold(reservation_id, key, share)

    async def release(self, key: str) -> None:
        """Nothing more is to be charged for this run: FLORA refused its create, or the run ended."""
        await self.store.release(key)

    async def close(self, reservation: Reservation) -> float:
        """The call is over: what it reserved and never submitted is free again. Returns the session's spend as the
        reservation ends, read in the same step."""
        reservation.left = 0.0
        totals = await self.store.close_reservation(reservation.reservation_id, totals_of=self.scope)
        assert totals is not None  # asked for
        reservation.closed = True
        return totals[0]

    async def charge(self, key: str, cost: float | None) -> bool:
        """Record what FLORA says a run cost and end its hold, in one step; True when `cost` is new for the run."""
        if cost is None:
            return False
        return await self.store.settle(key, cost) != cost

    async def run_event(self, key: str, cost: float | None, *, ended: bool, closing: Reservation | None = None,
                        **journal: Any) -> float | None:
        """A run's event and its money in one store step: the row's `journal` fields, FLORA's charge if it gave one
        (spend is read from the rows, so one reported twice counts once), the run's hold ended once the charge is
        known or the run `ended`. With `closing`, the call's reservation ends too (`close`), and the session's spend
        is returned."""
        fields = journal if cost is None else {**journal, "charged_cost": cost}
        totals = await self.store.write_run(key, end_hold=ended or cost is not None,
                                            close=closing.reservation_id if closing else None,
                                            totals_of=self.scope if closing else None, **fields)
        if closing is None or totals is None:
            return None
        closing.left, closing.closed = 0.0, True
        return totals[0]

    async def report(self, by_technique: list[dict[str, Any]]) -> dict[str, Any]:
        """What flora_spend and the spend resource show: this session, holds, all-time per technique, the caps."""
        spent, held = await self.totals()
        return {"session_spend": round(spent, 6),
                "held": round(held, 6),
                "total_charged": round(sum(r["charged"] for r in by_technique), 6),
                "by_technique": by_technique,
                "caps": {"max_cost_per_call": self.max_cost_per_call, "session_budget": self.session_budget},
                "summary": f"This session spent {format_usd(spent)}."}
