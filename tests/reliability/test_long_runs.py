"""Long runs, resume, cancellation, run timeout, malformed answers and 100 concurrent calls."""

from __future__ import annotations

import anyio
import httpx
import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import mcp_client, sandbox_config, settings_for

TECHNIQUE = "find-and-replace-text"


def args(text: str = "hello world") -> dict[str, str]:
    return {"text": text, "find": "world", "replace": "FLORA"}


@pytest.mark.anyio
async def test_a_run_longer_than_max_wait_returns_running_then_get_run_returns_outputs() -> None:
    async with serve_sandbox(sandbox_config(run_delay=1.5, estimate_scale=0.0)) as box, \
            Toolkit(settings_for(box, max_wait=0.4, poll_interval=0.1)) as kit:
        seen: list[float] = []

        async def progress(value: float, message: str) -> None:
            seen.append(value)

        first = await kit.call(TECHNIQUE, args(), progress=progress)
        assert first.status == "running" and not first.is_error
        assert first.run_id and "flora_get_run" in (first.next_step or "")
        assert len(seen) >= 2  # progress while waiting
        # As an agent would: call flora_get_run until the run ends (each call waits at most FLORA_MAX_WAIT).
        for _ in range(20):
            resumed = await kit.call("flora_get_run", {"run_id": first.run_id})
            if resumed.status != "running":
                break
        assert resumed.status == "completed" and resumed.run_id == first.run_id
        price = kit.catalog.get(TECHNIQUE).technique.run_cost  # type: ignore[union-attr]
        assert resumed.outputs and resumed.charged_cost == price
        async with httpx.AsyncClient() as http:
            assert (await http.get(resumed.outputs[0].url)).text == "hello FLORA"
        assert len(box.runs) == 1


@pytest.mark.anyio
async def test_get_run_with_zero_wait_polls_once() -> None:
    async with serve_sandbox(sandbox_config(run_delay=2.0, estimate_scale=0.0)) as box, \
            Toolkit(settings_for(box, max_wait=0.2)) as kit:
        first = await kit.call(TECHNIQUE, args())
        before = len(box.requests_for("get_technique_run"))
        again = await kit.call("flora_get_run", {"run_id": first.run_id, "wait_seconds": 0})
        assert again.status in ("running", "pending")
        assert len(box.requests_for("get_technique_run")) == before + 1


@pytest.mark.anyio
async def test_run_timeout_ends_waiting_with_the_run_id() -> None:
    async with serve_sandbox(sandbox_config(run_delay=3.0, estimate_scale=0.0)) as box, \
            Toolkit(settings_for(box, max_wait=10, run_timeout=0.3, poll_interval=0.1)) as kit:
        result = await kit.call(TECHNIQUE, args())
        assert result.status == "timed_out" and result.run_id
        assert "flora_get_run" in (result.next_step or "")
        assert (await kit.runs.recent())[0].run_id == result.run_id


@pytest.mark.anyio
async def test_get_run_works_for_a_run_this_server_never_saw(sandbox: Sandbox) -> None:
    # Another replica, or a journal that was lost: FLORA holds the run, GET /runs/{id} finds it.
    async with Toolkit(settings_for(sandbox)) as first_server:
        done = await first_server.call(TECHNIQUE, args())
    async with Toolkit(settings_for(sandbox)) as other_server:
        assert await other_server.runs.recent() == []
        result = await other_server.call("flora_get_run", {"run_id": done.run_id})
    assert result.status == "completed" and result.outputs == done.outputs
    assert result.charged_cost == done.charged_cost


@pytest.mark.anyio
async def test_get_run_of_an_unknown_id_is_a_clear_error(toolkit: Toolkit) -> None:
    result = await toolkit.call("flora_get_run", {"run_id": "run_doesnotexist"})
    assert result.is_error and result.error_code == "not_found"


@pytest.mark.anyio
async def test_cancelling_the_call_stops_polling_and_keeps_the_run() -> None:
    async with serve_sandbox(sandbox_config(run_delay=3.0, estimate_scale=0.0)) as box, \
            Toolkit(settings_for(box, poll_interval=0.05)) as kit:
        async with mcp_client(kit, raise_exceptions=False) as client:
            with anyio.move_on_after(0.6):
                await client.call_tool(TECHNIQUE, args())
            await anyio.sleep(0.1)  # a poll already on the wire when the call was cancelled may still land
            polls = len(box.requests_for("get_technique_run"))
            assert polls >= 1
            await anyio.sleep(0.5)  # ten poll intervals: none may come
            assert len(box.requests_for("get_technique_run")) == polls
            entry = (await kit.runs.recent())[0]
            assert entry.run_id and entry.status in ("pending", "running")
            resumed = await client.call_tool("flora_get_run", {"run_id": entry.run_id, "wait_seconds": 10})
        assert (resumed.structured_content or {})["status"] == "completed"
        assert len(box.runs) == 1


@pytest.mark.anyio
async def test_one_hundred_concurrent_calls_each_get_their_own_outputs() -> None:
    async with serve_sandbox(sandbox_config(estimate_scale=0.0)) as box, \
            Toolkit(settings_for(box, journal=":memory:")) as kit:
        results: dict[int, object] = {}

        async def one(i: int) -> None:
            results[i] = await kit.call(TECHNIQUE, args(f"call {i} world"))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(one, i)
        assert await kit.journal.count(kit.account) == 100
        assert len({r.run_id for r in results.values()}) == 100  # type: ignore[attr-defined]
        async with httpx.AsyncClient() as http:
            for i, result in results.items():
                assert result.status == "completed"  # type: ignore[attr-defined]
                text = (await http.get(result.outputs[0].url)).text  # type: ignore[attr-defined]
                assert text == f"call {i} FLORA"
        assert await kit.runs.session_spend() == pytest.approx(100 * results[0].charged_cost)  # type: ignore[operator]
