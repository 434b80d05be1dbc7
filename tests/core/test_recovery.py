"""Lost create answers (core/recovery.py): the run a create made is found, matched or kept, never paid twice.

The sandbox's `when="after"` faults run the real create (a run IS made and charged) and then lose its answer.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from flora_mcp.core.results import ToolResult
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted._pool import principal_account
from flora_mcp.sandbox import Sandbox
from tests.support import settings_for

TECHNIQUE = "find-and-replace-text"


def args(text: str) -> dict[str, str]:
    return {"text": text, "find": "world", "replace": "FLORA"}


def inputs_of(box: Sandbox, run_id: str | None) -> dict[str, str]:
    [run] = [r for r in box.runs if r.run_id == run_id]
    return run.inputs


async def listed(kit: Toolkit) -> list[dict[str, Any]]:
    result = await kit.call("flora_list_runs", {})
    assert result.data is not None, result.summary()
    return list(result.data["runs"])


# Item 4: a 5xx or a dropped connection after the request left is an unknown outcome, never a refusal -------------

LOST = {"500": {"kind": "status", "status": 500, "code": "unknown_error"}, "reset": {"kind": "drop"}}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(LOST))
async def test_a_lost_answer_without_retries_is_found_not_refused(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.inject(route="create_technique_run", when="after", **LOST[fault])
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        result = await kit.call(TECHNIQUE, args("hello world"))
    [run] = sandbox.runs
    assert len(sandbox.requests_for("create_technique_run")) == 1  # no retry: found by listing, not sent again
    assert result.status == "completed" and result.run_id == run.run_id, result.summary()
    assert result.charged_cost == run.charged_cost and result.outputs


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(LOST))
async def test_an_unknown_outcome_keeps_the_hold_and_the_run_is_listed_later(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.inject(route="create_technique_run", when="after", **LOST[fault])
    sandbox.faults.inject(route="list_technique_runs", kind="status", status=503)  # the lookup fails too
    async with Toolkit(settings_for(sandbox, max_retries=0, session_budget=1.0)) as kit:
        result = await kit.call("qr-code-generator", {"content": "priced"})  # 0.01 USD: a hold to keep
        held = await kit.runs.held()
        rows = await listed(kit)
    [run] = sandbox.runs
    assert result.status == "error" and result.error_code == "outcome_unknown", result.summary()
    assert result.run_id is None
    assert "try again" not in (result.next_step or "").lower(), result.next_step
    assert "Do not call the tool again" in (result.next_step or "")
    assert held > 0, "the hold of a run that may exist was released"
    # The next flora_list_runs asked FLORA again and found it.
    assert [(r["run_id"], r["status"]) for r in rows][:1] == [(run.run_id, rows[0]["status"])]
    assert rows[0]["status"] in ("pending", "running", "completed")


# Item 2: several lost answers, other runs of the technique, runs nobody can attribute ------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("retries", [0, 2], ids=["5xx", "409-on-retry"])
async def test_concurrent_lost_answers_are_matched_in_creation_order(sandbox: Sandbox, retries: int) -> None:
    sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500, count=3)
    results: dict[str, ToolResult] = {}
    async with Toolkit(settings_for(sandbox, max_retries=retries)) as kit:

        async def call(text: str) -> None:
            results[text] = await kit.call(TECHNIQUE, args(text))

        async with anyio.create_task_group() as tg:
            for text in ("one world", "two world", "three world"):
                tg.start_soon(call, text)
                await anyio.sleep(0.05)  # the order the rows are written and the requests leave
        rows = await listed(kit)
    assert len(sandbox.runs) == 3
    for text, result in results.items():
        assert result.status == "completed", result.summary()
        assert inputs_of(sandbox, result.run_id)["text"] == text
    assert sorted(r["run_id"] for r in rows) == sorted(r.run_id for r in sandbox.runs)


@pytest.mark.anyio
async def test_runs_claimed_by_any_account_on_the_key_are_not_candidates(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = str(tmp_path / "runs.sqlite3")
    async with Toolkit(settings_for(sandbox, journal=journal)) as own:
        # A hosted principal on the same key, in the same journal, ran the same technique a moment ago.
        async with Toolkit(settings_for(sandbox, journal=journal),
                           account=principal_account(own.account, "alice")) as alice:
            first = await alice.call(TECHNIQUE, args("alice's world"))
        earlier = await own.call(TECHNIQUE, args("earlier world"))
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        lost = await own.call(TECHNIQUE, args("lost world"))
        rows = await listed(own)
    assert first.status == earlier.status == "completed"
    assert lost.status == "completed", lost.summary()
    assert inputs_of(sandbox, lost.run_id)["text"] == "lost world"
    assert not any(r["idempotency_key"].startswith("adopted-") for r in rows)


@pytest.mark.anyio
async def test_an_unattributable_run_is_kept_named_and_readable(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        tool = kit.catalog.get(TECHNIQUE)
        assert tool is not None
        # A run of the same technique on the same key that this journal never saw (another process, the FLORA app).
        foreign = await kit.client.create_run(tool.technique, args("foreign world"), idempotency_key="elsewhere-1")
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        lost = await kit.call(TECHNIQUE, args("lost world"))
        [mine] = [r.run_id for r in sandbox.runs if r.inputs["text"] == "lost world"]
        rows = await listed(kit)
        read = await kit.call("flora_get_run", {"run_id": foreign.run_id, "wait_seconds": 10})
        # The adopted runs are claimed now: a later lost answer of the technique is recovered alone.
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        later = await kit.call(TECHNIQUE, args("later world"))
    # Genuinely ambiguous: said so, with both candidates named, nothing guessed.
    assert lost.status == "error" and lost.run_id is None
    assert foreign.run_id in (lost.error_message or "") and mine in (lost.error_message or "")
    assert "Do not call the tool again" in (lost.next_step or "")
    adopted = {r["run_id"] for r in rows if r["idempotency_key"].startswith("adopted-")}
    assert adopted == {foreign.run_id, mine}
    assert read.status == "completed" and read.outputs and read.run_id == foreign.run_id
    assert later.status == "completed", later.summary()
    assert inputs_of(sandbox, later.run_id)["text"] == "later world"
    assert len(sandbox.runs) == 3


@pytest.mark.anyio
async def test_adopted_runs_are_the_keys_own_not_a_hosted_principals(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = str(tmp_path / "runs.sqlite3")
    async with Toolkit(settings_for(sandbox, journal=journal)) as operator:
        tool = operator.catalog.get(TECHNIQUE)
        assert tool is not None
        await operator.client.create_run(tool.technique, args("foreign world"), idempotency_key="elsewhere-2")
        bob_account = principal_account(operator.account, "bob")
        async with Toolkit(settings_for(sandbox, journal=journal), account=bob_account, journal_only=True) as bob:
            sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
            lost = await bob.call(TECHNIQUE, args("bob's world"))
            bobs = await listed(bob)
            [foreign] = [r.run_id for r in sandbox.runs if r.inputs["text"] == "foreign world"]
            peek = await bob.call("flora_get_run", {"run_id": foreign})
        operators = await listed(operator)
    assert lost.run_id is None and lost.is_error
    # Bob sees his own lost call, never the unattributed runs (one may be another principal's, with its outputs).
    assert all(not r["idempotency_key"].startswith("adopted-") for r in bobs)
    assert peek.status == "invalid" and peek.error_code == "run_not_found"
    assert {r["run_id"] for r in operators if r["idempotency_key"].startswith("adopted-")} == {
        r.run_id for r in sandbox.runs}


@pytest.mark.anyio
async def test_a_call_whose_row_is_written_but_whose_create_has_not_left_is_not_a_lost_answer(
    sandbox: Sandbox,
) -> None:
    # A second call of the technique is held up between its start and its create request (here: its progress
    # notification is slow, as a client reading stdio slowly makes it). A lost answer meanwhile must still be
    # matched alone: the held-up call's row, if it is written, is a create about to leave, not a second lost one.
    entered, release = anyio.Event(), anyio.Event()

    async def slow_progress(value: float, message: str) -> None:
        if not entered.is_set():
            entered.set()
            await release.wait()

    results: dict[str, ToolResult] = {}
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:

        async def call(text: str, **options: Any) -> None:
            results[text] = await kit.call(TECHNIQUE, args(text), **options)

        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(call, "held world", progress=slow_progress))
            await entered.wait()
            sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
            await call("lost world")
            release.set()
    lost, held = results["lost world"], results["held world"]
    assert lost.status == "completed", lost.summary()
    assert inputs_of(sandbox, lost.run_id)["text"] == "lost world"
    assert held.status == "completed" and inputs_of(sandbox, held.run_id)["text"] == "held world"
    assert len(sandbox.runs) == 2
