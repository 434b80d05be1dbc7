"""The poll scheduler in the real wait loop: how many polls a run costs and when they come, against the sandbox.

Counts and order are checked exactly; times only as lower bounds (a poll can be late on a busy machine, never early).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from flora_mcp.api.client import FloraClient
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import TEST_KEY, sandbox_config, settings_for

TECHNIQUE = "synthetic-0001"  # text in, text out, no real work: its run time is the delay the sandbox is given


@dataclass
class Sent:
    at: float
    method: str
    path: str


class RecordingTransport(httpx.AsyncBaseTransport):
    """Times every request as it leaves, and can replace the `estimated_seconds` of create answers."""

    def __init__(self, estimate: float | None | str = "as sent") -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.estimate = estimate
        self.sent: list[Sent] = []
        self.created_at: float | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(Sent(anyio.current_time(), request.method, request.url.path))
        response = await self._inner.handle_async_request(request)
        if request.method != "POST":
            return response
        self.created_at = anyio.current_time()
        if self.estimate == "as sent":
            return response
        body = json.loads(await response.aread())
        body.pop("estimated_seconds", None)
        if self.estimate is not None:
            body["estimated_seconds"] = self.estimate
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in ("content-length",
                                                                                   "content-encoding")]
        return httpx.Response(response.status_code, headers=headers, json=body)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def polls(self) -> list[Sent]:
        return [s for s in self.sent if s.method == "GET" and "/runs/" in s.path]


@asynccontextmanager
async def run_setup(delay: float, *, poll_interval: float, estimate: float | None | str = "as sent",
                    estimate_scale: float = 0.0) -> AsyncIterator[tuple[Sandbox, Toolkit, RecordingTransport]]:
    config = sandbox_config(extra_techniques=1, technique_delays={TECHNIQUE: delay}, estimate_scale=estimate_scale)
    async with serve_sandbox(config) as box:
        transport = RecordingTransport(estimate)
        client = FloraClient(api_key=TEST_KEY, base_url=box.base_url, transport=transport)
        async with client, Toolkit(settings_for(box, poll_interval=poll_interval), client=client) as kit:
            transport.sent.clear()
            box.requests.clear()
            yield box, kit, transport


async def run_once(kit: Toolkit) -> dict[str, Any]:
    with anyio.fail_after(20):
        result = await kit.call(TECHNIQUE, {"prompt": "poll"})
    assert result.status == "completed", result
    return result.structured()


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.anyio
async def test_the_first_poll_waits_for_the_estimate_and_finds_the_run_done() -> None:
    # The sandbox announces (0.5 s + 0.4 s delay) x 0.5 = 0.45 s for a run of about 0.4 s.
    async with run_setup(0.4, poll_interval=0.05, estimate_scale=0.5) as (box, kit, transport):
        await run_once(kit)
        run = box.runs[-1]
    assert [r.route for r in box.requests] == [
        "create_technique_run", "get_technique_run"]  # one create, one poll, in that order
    assert box.requests_for("get_technique_run")[0].path.endswith(run.run_id)
    assert transport.created_at is not None
    assert transport.polls()[0].at - transport.created_at >= 0.45  # not before the estimate


@pytest.mark.anyio
async def test_without_an_estimate_the_progress_rate_times_the_polls() -> None:
    # A 1 s run, polled no more often than every 0.1 s: a fixed poller would poll 10 times.
    async with run_setup(1.0, poll_interval=0.1, estimate=None) as (box, kit, transport):
        await run_once(kit)
    polls = transport.polls()
    assert 2 <= len(polls) <= 4
    assert len(box.requests_for("get_technique_run")) == len(polls)
    assert transport.created_at is not None
    times = [transport.created_at] + [p.at for p in polls]
    assert all(g >= 0.1 for g in gaps(times))
    assert max(gaps(times)) >= 0.5  # after the first samples, one long wait aimed at the finish


@pytest.mark.anyio
async def test_an_estimate_that_is_too_short_is_corrected_by_the_progress_rate() -> None:
    async with run_setup(1.0, poll_interval=0.1, estimate=0.2) as (box, kit, transport):
        await run_once(kit)
    polls = transport.polls()
    assert transport.created_at is not None
    assert polls[0].at - transport.created_at >= 0.2
    assert 2 <= len(polls) <= 4


@pytest.mark.anyio
async def test_polls_are_never_closer_than_the_poll_interval() -> None:
    # Announced as 0.05 s, the run takes 1.2 s: the estimate and the progress rate both ask for early polls.
    async with run_setup(1.2, poll_interval=0.3, estimate=0.05) as (box, kit, transport):
        await run_once(kit)
    polls = transport.polls()
    assert transport.created_at is not None
    times = [transport.created_at] + [p.at for p in polls]
    assert all(g >= 0.3 for g in gaps(times))
    assert len(polls) <= 1.2 / 0.3 + 1
