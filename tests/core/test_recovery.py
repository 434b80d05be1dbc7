"""Lost create answers (core/recovery.py): the run a create made is found, matched or kept, never paid twice.

The sandbox's `when="after"` faults run the real create (a run IS made and charged) and then lose its answer.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from flora_mcp.core.results import ToolResult
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted._pool import principal_account
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import sandbox_config, settings_for

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
async def test_a_lost_answer_without_retries_is_found_not_refused(
    sandbox: Sandbox, fault: str, caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox.faults.inject(route="create_technique_run", when="after", **LOST[fault])
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        with caplog.at_level(logging.WARNING, logger="flora_mcp.core.recovery"):
            result = await kit.call(TECHNIQUE, args("hello world"))
        entry = await kit.journal.get(kit.account, result.run_id or "")
    [run] = sandbox.runs
    assert len(sandbox.requests_for("create_technique_run")) == 1  # no retry: found by listing, not sent again
    assert result.status == "completed" and result.run_id == run.run_id, result.summary()
    assert result.charged_cost == run.charged_cost and result.outputs
    # The row is the run's now, without the lost answer's error.
    assert entry is not None and entry.status == "completed" and entry.poll_url
    assert entry.error_code is None and entry.error_message is None
    assert "matched 1 lost create(s) of Find and Replace Text to FLORA's runs in creation order" in caplog.messages


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(LOST))
async def test_an_unknown_outcome_keeps_the_hold_and_the_run_is_listed_later(
    sandbox: Sandbox, fault: str, caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox.faults.inject(route="create_technique_run", when="after", **LOST[fault])
    sandbox.faults.inject(route="list_technique_runs", kind="status", status=503)  # the lookup fails too
    async with Toolkit(settings_for(sandbox, max_retries=0, session_budget=1.0)) as kit:
        with caplog.at_level(logging.WARNING, logger="flora_mcp.core.recovery"):
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
    # The operator's log says what happened and that it will be tried again.
    code = "unknown_error" if fault == "500" else "connection_error"
    assert f"create for QR Code Generator answered {code}; looking for the run it may have made" in caplog.messages
    assert "recovery lookup failed: An unknown error occurred.; flora_list_runs tries again" in caplog.messages


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
async def test_an_unattributable_run_is_kept_named_and_readable(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture,
) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        tool = kit.catalog.get(TECHNIQUE)
        assert tool is not None
        # A run of the same technique on the same key that this journal never saw (another process, the FLORA app).
        foreign = await kit.client.create_run(tool.technique, args("foreign world"), idempotency_key="elsewhere-1")
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        with caplog.at_level(logging.WARNING, logger="flora_mcp.core.recovery"):
            lost = await kit.call(TECHNIQUE, args("lost world"))
        [mine] = [r.run_id for r in sandbox.runs if r.inputs["text"] == "lost world"]
        rows = await listed(kit)
        read = await kit.call("flora_get_run", {"run_id": foreign.run_id, "wait_seconds": 10})
        # The adopted runs are claimed now: a later lost answer of the technique is recovered alone.
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        later = await kit.call(TECHNIQUE, args("later world"))
    # Genuinely ambiguous: said so, with both candidates named, nothing guessed.
    assert lost.status == "error" and lost.run_id is None
    named = f'"{foreign.run_id}", "{mine}"'  # oldest first
    assert (f"1 lost create(s) of Find and Replace Text and 2 unclaimed run(s) ({foreign.run_id}, {mine}): not "
            "guessing; the runs are kept as unclaimed journal rows") in caplog.messages
    assert (lost.error_message or "").endswith(f"FLORA has 2 runs of this technique it could be, not told apart: "
                                               f"{named}."), lost.error_message
    assert lost.next_step == (f"Do not call the tool again. Call flora_get_run with each run_id ({named}) to see "
                              "which is this call's; flora_list_runs lists them as unclaimed runs.")
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
        # An OAuth principal (`oauth:<sub>@<issuer>`): its issuer URL has slashes of its own.
        bob_account = principal_account(operator.account, "oauth:bob@https://idp.example/realms/main")
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


# Item 3: rows a killed process left without a run id are reconciled, at start-up and on flora_list_runs ------------


async def left_by_a_killed_process(kit: Toolkit, key: str, technique: str, arguments: dict[str, str]) -> str:
    """What a process killed mid-create leaves: its row, written before the request left, and FLORA's run."""
    tool = kit.catalog.get(technique)
    assert tool is not None
    t = tool.technique
    await kit.journal.record(idempotency_key=key, account=kit.account, tool=technique, technique_id=t.technique_id,
                             technique_slug=t.slug, technique_name=t.name, inputs=arguments, run_cost=t.run_cost)
    run = await kit.client.create_run(t, arguments, idempotency_key=key)
    return run.run_id


@pytest.mark.anyio
async def test_a_row_left_by_a_killed_process_gets_its_run_at_start_up(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    journal = str(tmp_path / "runs.sqlite3")
    async with Toolkit(settings_for(sandbox, journal=journal)) as dead:
        run_id = await left_by_a_killed_process(dead, "killed-1", TECHNIQUE, args("killed world"))
        # Its answer was a 5xx, and the process died before looking the run up.
        await dead.journal.update("killed-1", status="unknown", error_code="unknown_error",
                                  error_message="An unknown error occurred.")
    with caplog.at_level(logging.INFO, logger="flora_mcp.core.recovery"):
        async with Toolkit(settings_for(sandbox, journal=journal)) as restarted:
            entry = await restarted.journal.get_by_key("killed-1")  # before any call
            read = await restarted.call("flora_get_run", {"run_id": run_id, "wait_seconds": 10})
    assert entry is not None and entry.run_id == run_id
    assert entry.error_code is None and entry.error_message is None
    assert entry.poll_url and entry.poll_url.endswith(run_id) and entry.progress is not None
    assert read.status == "completed" and read.outputs
    assert "reconciled 1 journal row(s) left without a run id" in caplog.messages
    assert len(sandbox.requests_for("create_technique_run")) == 1  # found, never submitted again


@pytest.mark.anyio
async def test_a_technique_flora_cannot_list_now_does_not_stop_the_others_and_is_tried_again(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture,
) -> None:
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        text_run = await left_by_a_killed_process(kit, "killed-text", TECHNIQUE, args("killed world"))
        qr_run = await left_by_a_killed_process(kit, "killed-qr", "qr-code-generator", {"content": "killed"})
        sandbox.faults.inject(route="list_technique_runs", kind="status", status=503)  # the first technique's
        with caplog.at_level(logging.WARNING, logger="flora_mcp.core.recovery"):
            first = await kit.runs.reconcile()
        text_row, qr_row = await kit.journal.get_by_key("killed-text"), await kit.journal.get_by_key("killed-qr")
        second = await kit.runs.reconcile()
        again = await kit.journal.get_by_key("killed-text")
        third = await kit.runs.reconcile()
    assert first == 1 and text_row is not None and text_row.run_id is None
    assert qr_row is not None and qr_row.run_id == qr_run
    assert ("reconciling runs of Find and Replace Text left without a run id: An unknown error occurred."
            in caplog.messages), caplog.messages
    assert second == 1 and again is not None and again.run_id == text_run
    assert third == 0


@pytest.mark.anyio
async def test_a_killed_processs_row_with_two_candidates_is_left_unidentified_and_both_runs_kept(
    sandbox: Sandbox,
) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        tool = kit.catalog.get(TECHNIQUE)
        assert tool is not None
        foreign = await kit.client.create_run(tool.technique, args("foreign world"), idempotency_key="elsewhere-3")
        mine = await left_by_a_killed_process(kit, "killed-2", TECHNIQUE, args("killed world"))
        assert await kit.runs.reconcile() == 0
        row = await kit.journal.get_by_key("killed-2")
        adopted = [await kit.journal.get_by_key(f"adopted-{run_id}") for run_id in (foreign.run_id, mine)]
        rows = await listed(kit)
    assert row is not None and row.run_id is None and row.status == "unknown"
    assert row.error_code == "run_not_identified"
    assert row.error_message == f"run not identified; unclaimed candidates: {foreign.run_id}, {mine}"
    for entry, run_id in zip(adopted, (foreign.run_id, mine), strict=True):
        assert entry is not None and entry.account == kit.account and entry.run_id == run_id
        assert (entry.tool, entry.technique_id, entry.technique_slug, entry.technique_name) == (
            TECHNIQUE, tool.technique.technique_id, tool.technique.slug, tool.technique.name)
        assert entry.status in ("pending", "running", "completed") and entry.poll_url
    assert {r["run_id"] for r in rows} >= {foreign.run_id, mine}


@pytest.mark.anyio
async def test_concurrent_lost_answers_that_cannot_be_told_apart_both_name_every_candidate(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        tool = kit.catalog.get(TECHNIQUE)
        assert tool is not None
        foreign = await kit.client.create_run(tool.technique, args("foreign world"), idempotency_key="elsewhere-4")
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500, count=2)
        results: dict[str, ToolResult] = {}

        async def call(text: str) -> None:
            results[text] = await kit.call(TECHNIQUE, args(text))

        async with anyio.create_task_group() as tg:
            for text in ("one world", "two world"):
                tg.start_soon(call, text)
                await anyio.sleep(0.05)
    ids = [r.run_id for r in sandbox.runs]
    assert len(ids) == 3 and ids[0] == foreign.run_id
    for result in results.values():  # 2 lost answers, 3 runs: nothing guessed, all three named to both calls
        assert result.status == "error" and result.run_id is None, result.summary()
        assert all(run_id in (result.error_message or "") for run_id in ids), result.error_message
        assert "FLORA has 3 runs of this technique" in (result.error_message or "")


@pytest.mark.anyio
async def test_a_lost_answer_whose_run_another_process_matched_meanwhile_gets_that_run(
    sandbox: Sandbox, tmp_path: Path,
) -> None:
    journal = str(tmp_path / "runs.sqlite3")
    # The create's answer stalls past the client's timeout; meanwhile another process on the same journal lists
    # its runs, which matches the row to FLORA's run.
    sandbox.faults.inject(route="create_technique_run", when="after", kind="stall", seconds=8.0)
    settings = settings_for(sandbox, journal=journal, max_retries=0, request_timeout=3.0)
    async with Toolkit(settings) as mine, Toolkit(settings_for(sandbox, journal=journal)) as other:
        results: list[ToolResult] = []

        async def call() -> None:
            results.append(await mine.call(TECHNIQUE, args("stalled world")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(10):
                while not sandbox.runs:
                    await anyio.sleep(0.02)
            assert await other.runs.reconcile() == 1
    [run] = sandbox.runs
    [result] = results
    assert result.status == "completed" and result.run_id == run.run_id, result.summary()
    assert len(sandbox.requests_for("create_technique_run")) == 1


@pytest.mark.anyio
async def test_reconciling_counts_every_row_that_got_its_run(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture,
) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        runs = [await left_by_a_killed_process(kit, f"killed-{n}", TECHNIQUE, args(f"killed {n} world"))
                for n in range(2)]
        with caplog.at_level(logging.INFO, logger="flora_mcp.core.recovery"):
            assert await kit.runs.reconcile() == 2
        rows = [await kit.journal.get_by_key(f"killed-{n}") for n in range(2)]
    assert [row.run_id if row else None for row in rows] == runs  # in creation order
    assert "reconciled 2 journal row(s) left without a run id" in caplog.messages


@pytest.mark.anyio
async def test_reconciling_counts_the_rows_of_every_technique(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        await left_by_a_killed_process(kit, "killed-text", TECHNIQUE, args("killed world"))
        await left_by_a_killed_process(kit, "killed-qr", "qr-code-generator", {"content": "killed"})
        assert await kit.runs.reconcile() == 2


@pytest.mark.anyio
async def test_an_adopted_run_keeps_the_techniques_price(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        tool = kit.catalog.get("qr-code-generator")
        assert tool is not None and tool.technique.run_cost == 0.01
        await kit.client.create_run(tool.technique, {"content": "foreign"}, idempotency_key="elsewhere-8")
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        lost = await kit.call("qr-code-generator", {"content": "lost"})  # two candidates: both adopted
        await left_by_a_killed_process(kit, "killed-qr", "qr-code-generator", {"content": "killed"})
        await kit.client.create_run(tool.technique, {"content": "foreign 2"}, idempotency_key="elsewhere-9")
        assert await kit.runs.reconcile() == 0  # one row, two candidates: adopted too
        adopted = [await kit.journal.get_by_key(f"adopted-{run.run_id}") for run in sandbox.runs]
    assert lost.status == "error" and len(adopted) == 4
    assert [entry.run_cost if entry else None for entry in adopted] == [0.01] * 4


# Which of FLORA's runs are candidates: this technique's, recent, unclaimed, on every page --------------------------


@pytest.mark.anyio
async def test_runs_of_other_techniques_and_runs_older_than_the_window_are_not_candidates(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        text, qr = kit.catalog.get(TECHNIQUE), kit.catalog.get("qr-code-generator")
        assert text is not None and qr is not None
        await kit.client.create_run(qr.technique, {"content": "another technique"}, idempotency_key="elsewhere-5")
        old = await kit.client.create_run(text.technique, args("old world"), idempotency_key="elsewhere-6")
        [aged] = [r for r in sandbox.runs if r.run_id == old.run_id]
        aged.created_at -= 3_600_000  # made an hour ago, in the FLORA app: FLORA's timestamps are milliseconds
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        lost = await kit.call(TECHNIQUE, args("lost world"))
    assert lost.status == "completed", lost.summary()
    assert inputs_of(sandbox, lost.run_id)["text"] == "lost world"


@pytest.mark.anyio
async def test_a_run_whose_time_flora_gives_in_seconds_is_judged_recent(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        tool = kit.catalog.get(TECHNIQUE)
        assert tool is not None
        foreign = await kit.client.create_run(tool.technique, args("foreign world"), idempotency_key="elsewhere-7")
        [run] = sandbox.runs
        run.created_at //= 1000  # seconds since the epoch, a moment ago
        sandbox.faults.inject(route="create_technique_run", when="after", kind="status", status=500)
        lost = await kit.call(TECHNIQUE, args("lost world"))
    # A candidate as much as the lost call's own run: the two cannot be told apart.
    assert lost.status == "error" and foreign.run_id in (lost.error_message or ""), lost.summary()


@pytest.mark.anyio
async def test_candidates_are_looked_for_on_every_page_of_flora_s_runs() -> None:
    async with serve_sandbox(sandbox_config(page_size=3, max_page_size=3)) as box:  # 3 runs a page
        async with Toolkit(settings_for(box)) as kit:
            older = await left_by_a_killed_process(kit, "killed-older", TECHNIQUE, args("older world"))
            tool = kit.catalog.get(TECHNIQUE)
            assert tool is not None
            for n in range(3):  # runs this journal claims, between the two
                run = await kit.client.create_run(tool.technique, args(f"claimed {n}"), idempotency_key=f"c-{n}")
                await kit.journal.adopt(account=kit.account, key=f"claimed-{n}", tool=TECHNIQUE,
                                        technique_id=tool.technique.technique_id, technique_slug=tool.technique.slug,
                                        technique_name=tool.technique.name, run_id=run.run_id, status=run.status,
                                        poll_url=run.poll_url, run_cost=None)
            newer = await left_by_a_killed_process(kit, "killed-newer", TECHNIQUE, args("newer world"))
            assert await kit.runs.reconcile() == 2  # the newer on the first page, the older on the second
            rows = [await kit.journal.get_by_key(key) for key in ("killed-older", "killed-newer")]
    assert [row.run_id if row else None for row in rows] == [older, newer]
