"""A create that left and got no usable answer is an unknown outcome, never a refusal.

With retries off (FLORA_MAX_RETRIES=0), a 5xx or a dropped connection after the request was sent may hide a run FLORA
made and charged: the call says the outcome is unknown and where to look, never "try again", and the run's price
stays held against the budget. The rule is `APIError.outcome_unknown`'s, told by the one translator.
"""

from __future__ import annotations

from typing import Any

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import posts, settings_for

QR = "qr-code-generator"
PRICE = 0.01
FAULTS: dict[str, dict[str, Any]] = {
    "500-after": {"kind": "status", "status": 500, "when": "after"},
    "502-after": {"kind": "status", "status": 502, "when": "after"},
    "503-after": {"kind": "status", "status": 503, "when": "after"},
    "html-502-after": {"kind": "html", "when": "after"},
    "dropped-after": {"kind": "drop", "when": "after"},
    # FLORA made nothing here, but a client cannot tell this 500 from the one after: the same answer.
    "500-before": {"kind": "status", "status": 500, "when": "before"},
}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_create_answered_5xx_or_dropped_is_an_unknown_outcome_and_keeps_its_hold(
        sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.inject(route="create_technique_run", **FAULTS[fault])
    # The run cannot be found either (the in-call lookup and the reconcile of flora_list_runs fail): what is left is
    # the rule itself. tests/core/test_recovery.py has the run found and listed.
    sandbox.faults.inject(route="list_technique_runs", kind="status", status=503, count=2)
    async with Toolkit(settings_for(sandbox, max_retries=0, session_budget=PRICE)) as kit:
        lost = await kit.call(QR, {"content": "paid, answer lost"})
        held = await kit.runs.held()
        [row] = await kit.runs.recent()
        again = await kit.call(QR, {"content": "a second one"})
    assert posts(sandbox) == 1, "no retry, no second run"
    assert len(sandbox.runs) == (1 if FAULTS[fault]["when"] == "after" else 0)
    assert (lost.status, lost.error_code, lost.run_id) == ("error", "outcome_unknown", None), lost.summary()
    words = f"{lost.error_message} {lost.next_step} {lost.summary()}".lower()
    assert "try again" not in words and "nothing was" not in words and "not charged" not in words, words
    assert "flora_list_runs" in (lost.next_step or "")
    # The run may exist and be charged: its price is still held, and the journal says the outcome is unknown.
    assert held == pytest.approx(PRICE)
    assert (row.status, row.run_id, row.idempotency_key) == ("unknown", None,
                                                            sandbox.requests_for("create_technique_run")[0]
                                                            .idempotency_key)
    assert row.error_code in ("unknown_error", "connection_error", "malformed_response")
    # What is held counts: a call that would spend it again is refused before anything is sent.
    assert again.error_code == "cost_cap_exceeded" and posts(sandbox) == 1


@pytest.mark.anyio
async def test_a_create_flora_refused_releases_its_hold_and_says_nothing_was_charged(sandbox: Sandbox) -> None:
    # The other side of the rule: a 4xx on the create is FLORA saying no; nothing is held.
    sandbox.faults.inject(route="create_technique_run", kind="status", status=402, when="before")
    async with Toolkit(settings_for(sandbox, max_retries=0, session_budget=PRICE)) as kit:
        refused = await kit.call(QR, {"content": "no credits"})
        held = await kit.runs.held()
        [row] = await kit.runs.recent()
    assert (refused.error_code, refused.run_id) == ("insufficient_credits", None)
    assert held == 0.0 and row.status == "error"


@pytest.mark.anyio
@pytest.mark.parametrize("last", ["429-before", "400-before"])
async def test_a_retry_refused_after_an_attempt_that_may_have_made_the_run_is_still_an_unknown_outcome(
        sandbox: Sandbox, last: str) -> None:
    """The first attempt made the run and its answer was lost (500 after); the retry, with the same key, was
    refused. The refusal says nothing of the first attempt: the run is looked for (and found), never "try again"."""
    status = int(last.split("-")[0])
    sandbox.faults.inject(route="create_technique_run", kind="status", status=500, when="after")
    sandbox.faults.inject(route="create_technique_run", kind="status", status=status, when="before")
    async with Toolkit(settings_for(sandbox, max_retries=1, session_budget=PRICE)) as kit:
        result = await kit.call(QR, {"content": "made by the first attempt"})
        [row] = await kit.runs.recent()
    keys = {r.idempotency_key for r in sandbox.requests_for("create_technique_run")}
    assert posts(sandbox) == 2 and len(keys) == 1, "one retry, with the same key"
    [made] = sandbox.runs
    assert (result.status, result.run_id) == ("completed", made.run_id), result.summary()
    assert row.run_id == made.run_id and row.status == "completed"
