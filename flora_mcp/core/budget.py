"""The session's money: what was charged, what is held for runs not charged yet, and the caps, checked before sending.

A call's whole price is reserved in the same step as the cap check (no await between them), so concurrent calls
cannot spend the same dollars twice. As each run's create leaves, it takes its share of the reservation as a hold under
its idempotency key; the hold ends when FLORA reports the charge or the run ends, or when FLORA refused the create. A
create whose outcome is unknown keeps its hold: the run may exist and be charged. A charge is counted once, even when
FLORA reports it at creation and again at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flora_mcp.api.models import Technique
from flora_mcp.core.results import ToolResult, format_usd
from flora_mcp.core.translator import cost_refusal, refusal

__all__ = ["Reservation", "SpendLedger"]

# Prices are sums of floats: a call that costs exactly the cap is within it.
_EPSILON = 1e-9


@dataclass
class Reservation:
    """The price of one call's runs, reserved at the cost check and handed to each run as its create leaves."""

    per_run: float
    left: float


class SpendLedger:
    """One toolkit's session spend, holds and reservations, against FLORA_MAX_COST_PER_CALL, FLORA_SESSION_BUDGET
    and FLORA_PRINCIPAL_BUDGET.

    Args:
        daily_budget: USD the account may be charged today (FLORA_PRINCIPAL_BUDGET), besides what is held.
        spent_today: what the account was charged today, from the journal, so a restart does not reset it.
    """

    def __init__(self, *, max_cost_per_call: float | None, session_budget: float | None,
                 daily_budget: float | None = None, spent_today: Callable[[], float] | None = None) -> None:
        self.max_cost_per_call = max_cost_per_call
        self.session_budget = session_budget
        self.daily_budget = daily_budget
        self._spent_today = spent_today
        self.session_spend = 0.0
        self._reserved = 0.0
        self._holds: dict[str, float] = {}

    @property
    def held(self) -> float:
        """USD the budget counts besides what was charged: calls being submitted, runs not charged yet."""
        return self._reserved + sum(self._holds.values())

    def admit(self, tool: str, technique: Technique, runs: int) -> Reservation | ToolResult:
        """Reserve the price of `runs` runs of `technique`, or the refusal that names the cap it would break."""
        price = None if technique.run_cost is None else technique.run_cost * runs
        cap, budget = self.max_cost_per_call, self.session_budget
        remaining = None if budget is None else max(budget - self.session_spend - self.held, 0.0)
        if cap is not None and (price is None or price > cap + _EPSILON):
            return cost_refusal(tool, technique, price=price, cap_name="FLORA_MAX_COST_PER_CALL", cap=cap,
                                remaining=remaining)
        if budget is not None and remaining is not None and (price is None or price > remaining + _EPSILON):
            return cost_refusal(tool, technique, price=price, cap_name="FLORA_SESSION_BUDGET", cap=budget,
                                remaining=remaining)
        daily = self.daily_budget
        if daily is not None:
            spent = self._spent_today() if self._spent_today is not None else self.session_spend
            left = max(daily - spent - self.held, 0.0)
            if price is None or price > left + _EPSILON:
                cost = "an unknown price" if price is None else format_usd(price)
                return refusal(tool, technique, f"This call costs {cost}, above what remains of "
                               f"FLORA_PRINCIPAL_BUDGET ({format_usd(daily)} a day): {format_usd(left)} is left "
                               "today (UTC).", code="cost_cap_exceeded",
                               next_step="Nothing was submitted. The budget renews at midnight UTC; ask the operator "
                                         "to raise it, or choose a cheaper call.")
        reservation = Reservation(per_run=technique.run_cost or 0.0, left=price or 0.0)
        self._reserved += reservation.left
        return reservation

    def hold(self, reservation: Reservation, key: str) -> None:
        """A run's create is leaving: its share of the call's reservation is held under its key."""
        share = min(reservation.per_run, reservation.left)
        reservation.left -= share
        self._reserved -= share
        self._holds[key] = share

    def release(self, key: str) -> None:
        """Nothing more is to be charged for this run: FLORA refused its create, or the run ended."""
        self._holds.pop(key, None)

    def close(self, reservation: Reservation) -> None:
        """The call is over: what it reserved and never submitted is free again."""
        self._reserved -= reservation.left
        reservation.left = 0.0

    def charge(self, key: str, cost: float | None, *, already: float | None) -> bool:
        """Count what FLORA says a run cost, once; `already`: the cost recorded before. True when `cost` is new."""
        if cost is None:
            return False
        self.release(key)
        if already == cost:
            return False
        self.session_spend += cost - (already or 0.0)
        return True

    def report(self, by_technique: list[dict[str, Any]]) -> dict[str, Any]:
        """What flora_spend and the spend resource show: this session, holds, all-time per technique, the caps."""
        return {"session_spend": round(self.session_spend, 6),
                "held": round(self.held, 6),
                "total_charged": round(sum(r["charged"] for r in by_technique), 6),
                "by_technique": by_technique,
                "caps": {"max_cost_per_call": self.max_cost_per_call, "session_budget": self.session_budget},
                "summary": f"This session spent {format_usd(self.session_spend)}."}
