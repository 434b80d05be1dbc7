"""Progress every second while a call waits between polls, outside the `clients` marker.

Clients that reset their request timeout on progress (the TypeScript SDK, Claude Code) drop a call that is silent for
longer than their timeout, and FLORA wants 2-5 s between polls: so the wait between two polls is cut into 1 s steps,
each ending with a progress notification. The poll interval here (3.5 s) is longer than the run (2.5 s), so each
gap between two requests to FLORA holds three heartbeats, at 1, 2 and 3 s. Only counts and orders are asserted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import mcp_client, polls, sandbox_config, settings_for

POLL_INTERVAL = 3.5
RUN_DELAY = 2.5
BEATS_PER_GAP = 3
"""Whole seconds in a POLL_INTERVAL gap: one heartbeat each."""
TECHNIQUE = "qr-code-generator"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(technique_delays={TECHNIQUE: RUN_DELAY})) as box:
        yield box


def is_heartbeat(message: str | None) -> bool:
    return message is not None and "waiting" in message


async def first_gap_heartbeats(sandbox: Sandbox, slow_on: Callable[[str], bool], seconds: float
                               ) -> tuple[list[str], list[tuple[int, str]]]:
    """One call whose client takes `seconds` over the first progress `slow_on` picks: the heartbeats before the
    first poll, and every (polls so far, message) it saw."""
    events: list[tuple[int, str]] = []
    slowed = False

    async def on_progress(percent: float, message: str) -> None:
        nonlocal slowed
        events.append((polls(sandbox), message))
        if slow_on(message) and not slowed:
            slowed = True
            await anyio.sleep(seconds)

    async with Toolkit(settings_for(sandbox, poll_interval=POLL_INTERVAL)) as kit:
        result = await kit.call(TECHNIQUE, {"content": f"slowed {seconds} s"}, progress=on_progress)
    assert result.status == "completed" and slowed, result.summary()
    return [message for gap, message in events if gap == 0 and is_heartbeat(message)], events


@pytest.mark.anyio
async def test_each_gap_between_polls_has_a_heartbeat_every_second(sandbox: Sandbox) -> None:
    events: list[tuple[int, float, str]] = []  # polls that had reached FLORA, progress, message

    async def on_progress(percent: float, message: str) -> None:
        events.append((polls(sandbox), percent, message))

    async with Toolkit(settings_for(sandbox, poll_interval=POLL_INTERVAL)) as kit:
        result = await kit.call(TECHNIQUE, {"content": "beat"}, progress=on_progress)
    assert result.status == "completed", result.summary()
    total_polls = polls(sandbox)
    assert total_polls >= 1
    for gap in range(total_polls):  # before the first poll, and between each two
        beats = [e for e in events if e[0] == gap and is_heartbeat(e[2])]
        assert len(beats) >= BEATS_PER_GAP, (gap, events)
    assert not [e for e in events if e[0] == total_polls and is_heartbeat(e[2])]  # none once the run is done
    values = [percent for _, percent, _ in events]
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly rising, as MCP requires
    assert values[-1] == 100.0


@pytest.mark.anyio
async def test_an_mcp_client_receives_the_heartbeats_as_progress_notifications(sandbox: Sandbox) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Toolkit(settings_for(sandbox, poll_interval=POLL_INTERVAL)) as kit, mcp_client(kit) as client:
        result = await client.call_tool(TECHNIQUE, {"content": "beat over mcp"}, progress_callback=on_progress)
    assert result.is_error is False and (result.structured_content or {})["status"] == "completed"
    beats = [s for s in seen if is_heartbeat(s[2])]
    assert len(beats) >= BEATS_PER_GAP * polls(sandbox), seen
    values = [p for p, _, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(total == 100.0 for _, total, _ in seen)


@pytest.mark.anyio
async def test_the_first_poll_is_due_an_interval_after_the_creates_answer_not_after_what_followed_it(
        sandbox: Sandbox) -> None:
    """What follows the create's answer (the journal's write of the run id, the first progress) happens during the
    wait for the first poll, not before it: here the client's handling of that first progress takes 1.5 of the
    3.5 s, and the gap before the first poll holds one heartbeat, not three."""
    first_gap, events = await first_gap_heartbeats(sandbox, lambda m: m in ("pending", "running"), 1.5)
    assert 1 <= len(first_gap) < BEATS_PER_GAP, events


@pytest.mark.anyio
async def test_a_slow_heartbeat_is_followed_by_the_next_a_second_later_not_by_a_burst(sandbox: Sandbox) -> None:
    """A heartbeat the client takes 2.2 s to handle (a slow pipe, a busy client) is followed by the next one a
    second after it was handled, not by the two it missed sent at once: here the poll is due before that second
    is up, so the first gap holds that one heartbeat only."""
    first_gap, events = await first_gap_heartbeats(sandbox, is_heartbeat, 2.2)
    assert len(first_gap) == 1, events
