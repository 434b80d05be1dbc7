"""`flora_get_run`: picking a run up again by id (`RunManager.resume`), from the journal when it has the run, else
from FLORA alone; in hosted mode with a shared key (`journal_only`), only from this caller's journal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import polls, sandbox_config, settings_for

pytestmark = pytest.mark.anyio

TECHNIQUE = "qr-code-generator"
SLOW = 10.0
"""Seconds the sandbox takes for a run here: long enough that a pick-up that does not wait finds it unfinished."""


@pytest.fixture
async def slow_sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(technique_delays={TECHNIQUE: SLOW})) as box:
        yield box


async def test_a_run_only_flora_knows_is_picked_up_by_its_id(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as maker:
        made = await maker.call(TECHNIQUE, {"content": "made elsewhere"})
    async with Toolkit(settings_for(sandbox)) as other:  # its own journal (in memory): FLORA alone knows the run
        found = await other.call("flora_get_run", {"run_id": made.run_id})
    assert (found.status, found.run_id, found.outputs) == ("completed", made.run_id, made.outputs)


async def test_with_a_shared_key_only_the_callers_own_runs_are_picked_up(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox), account="alice", journal_only=True) as alice:
        mine = await alice.call(TECHNIQUE, {"content": "alice's"})
        again = await alice.call("flora_get_run", {"run_id": mine.run_id})
        assert (again.status, again.run_id, again.outputs) == ("completed", mine.run_id, mine.outputs)
        async with Toolkit(settings_for(sandbox), journal=alice.journal, account="bob", journal_only=True) as bob:
            theirs = await bob.call("flora_get_run", {"run_id": mine.run_id})
    assert (theirs.status, theirs.error_code) == ("invalid", "run_not_found")
    assert theirs.error_message == f"No run {mine.run_id} among this caller's runs."
    assert theirs.next_step == "flora_list_runs lists the runs you started." and not theirs.outputs


async def test_wait_seconds_zero_answers_at_once_with_one_look_and_says_so_in_progress(slow_sandbox: Sandbox) -> None:
    events: list[tuple[float, str]] = []

    async def on_progress(percent: float, message: str) -> None:
        events.append((percent, message))

    async with Toolkit(settings_for(slow_sandbox, max_wait=0.2)) as kit:
        started = await kit.call(TECHNIQUE, {"content": "still going"})
        assert started.status in ("pending", "running") and started.run_id, started.summary()
        before = polls(slow_sandbox)
        looked = await kit.call("flora_get_run", {"run_id": started.run_id, "wait_seconds": 0}, progress=on_progress)
    assert polls(slow_sandbox) == before + 1  # one look, no wait
    assert looked.status in ("pending", "running") and looked.run_id == started.run_id
    assert [message for _, message in events] == [looked.status]


async def test_a_look_that_fails_answers_with_the_run_id_and_how_to_check_again(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        made = await kit.call(TECHNIQUE, {"content": "look fails"})
        sandbox.faults.inject("get_technique_run", "status", status=401, code="unauthorized", count=10)
        sandbox.faults.inject("get_run", "status", status=401, code="unauthorized", count=10)
        looked = await kit.call("flora_get_run", {"run_id": made.run_id})
    assert (looked.status, looked.error_code, looked.run_id) == ("error", "unauthorized", made.run_id)
    assert f'run_id "{made.run_id}"' in (looked.next_step or "")


async def test_a_session_spend_the_store_cannot_give_is_left_out_and_logged(
        sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        made = await kit.call(TECHNIQUE, {"content": "spend unreadable"})

        async def session_spend(*args: Any, **kwargs: Any) -> float:
            raise OSError(5, "Input/output error")

        kit.runs.session_spend = session_spend  # type: ignore[method-assign]
        looked = await kit.call("flora_get_run", {"run_id": made.run_id})
    assert looked.status == "completed" and looked.session_spend is None
    assert f"cannot read the session's spend from {kit.journal.location}: [Errno 5] Input/output error" in [
        r.getMessage() for r in caplog.records if r.name == "flora_mcp.core.runs"]
