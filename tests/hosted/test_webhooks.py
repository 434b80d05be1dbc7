"""Webhook completion, polling as the floor: a hosted server creates runs with its callback URL, takes FLORA's signed
webhook, and the waiting call fetches its run at once; forged, stale, replayed, duplicated, dropped and delayed
webhooks change nothing but the number of polls. Asserted as counts and orderings, never as times."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

from flora_mcp.hosted import HostedServer, bind
from flora_mcp.hosted._webhooks import MAX_BODY, WEBHOOK_PATH, webhook_url
from flora_mcp.sandbox import DEFAULT_WEBHOOK_SECRET, Delivery, Sandbox, serve_sandbox
from tests.hosted.hosted_support import data_of, hosted, mcp_session
from tests.support import polls, sandbox_config, settings_for

pytestmark = pytest.mark.anyio

SPLIT = {"text": "a\nb"}
NEVER = 1000.0
"""A safety-net poll interval longer than any wait here (FLORA_MAX_WAIT is 20 s): only a webhook ends the wait."""


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    # Runs take a moment, so the call is waiting when the webhook comes; retries of a refused delivery are quick.
    async with serve_sandbox(sandbox_config(run_delay=0.3, webhook_retry_delay=0.01)) as sandbox:
        yield sandbox


@asynccontextmanager
async def webhook_server(box: Sandbox, **overrides: Any) -> AsyncIterator[HostedServer]:
    """A hosted server whose FLORA_PUBLIC_URL is its own loopback URL, with the sandbox's webhook secret."""
    sock = bind("127.0.0.1", 0)
    values: dict[str, Any] = {"public_url": f"http://127.0.0.1:{sock.getsockname()[1]}/mcp",
                              "webhook_secret": SecretStr(DEFAULT_WEBHOOK_SECRET), "webhook_poll_interval": NEVER}
    values.update(overrides)
    async with hosted(settings_for(box, **values), sock=sock) as server:
        yield server


async def call(server: HostedServer, tool: str = "split-text", arguments: dict[str, str] = SPLIT) -> dict[str, Any]:
    async with mcp_session(server) as session:
        with anyio.fail_after(30):
            return data_of(await session.call_tool(tool, arguments))


async def answered(box: Sandbox, count: int = 1) -> list[Delivery]:
    """The deliveries, once `count` answers came back to the sandbox."""
    with anyio.fail_after(15):
        while sum(len(d.answers) for d in box.deliveries) < count:
            await anyio.sleep(0.01)
    return box.deliveries


def completions_of(server: HostedServer) -> Any:
    assert server.completions is not None
    return server.completions


async def test_a_valid_webhook_ends_the_wait_with_one_fetch_and_no_poll_before_it(box: Sandbox) -> None:
    async with webhook_server(box) as server:
        result = await call(server)
        [delivery] = await answered(box)
        completions = completions_of(server)
    assert result["status"] == "completed" and result["run_id"] == delivery.run_id
    assert [o["output_id"] for o in result["outputs"]] == ["part_1", "part_2"]
    [create] = box.requests_for("create_technique_run")
    assert create.body["callback_url"] == f"{server.url}{WEBHOOK_PATH}"
    assert delivery.answers == [200]
    assert polls(box) == 1  # the fetch the webhook asked for; the safety net never polled
    assert (completions.received, completions.repeated, completions.waiting) == (1, 0, 0)


async def test_a_forged_webhook_is_refused_and_polling_still_completes_the_call(box: Sandbox) -> None:
    box.faults.inject("webhook", "forge")
    async with webhook_server(box, webhook_poll_interval=0.2) as server:
        result = await call(server)
        [delivery] = await answered(box)
        assert server.hosted.webhooks is not None
        refused = server.hosted.webhooks.refused
        completions = completions_of(server)
    assert result["status"] == "completed"
    assert delivery.answers == [400]  # a refusal is final: the sender does not retry it
    assert (refused, completions.received, completions.wakes) == (1, 0, 0)
    assert polls(box) >= 1


async def test_a_stale_webhook_is_refused_though_correctly_signed(box: Sandbox) -> None:
    box.faults.inject("webhook", "stale")
    async with webhook_server(box, webhook_poll_interval=0.2) as server:
        result = await call(server)
        [delivery] = await answered(box)
        completions = completions_of(server)
    assert result["status"] == "completed"
    assert delivery.answers == [400] and completions.wakes == 0


async def test_a_replayed_webhook_is_not_acted_on_again_and_once_stale_is_refused(box: Sandbox) -> None:
    async with webhook_server(box) as server:
        await call(server)
        [delivery] = await answered(box)
        fetches = polls(box)
        url = f"{server.url}{WEBHOOK_PATH}"
        async with httpx.AsyncClient() as http:
            again = await http.post(url, content=delivery.body, headers=delivery.headers)
            receiver = server.hosted.webhooks
            assert receiver is not None
            clock = receiver.clock
            receiver.clock = lambda: clock() + 301  # the same bytes, five minutes and a second later
            late = await http.post(url, content=delivery.body, headers=delivery.headers)
        completions = completions_of(server)
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert late.status_code == 400 and "stale or replayed" in late.json()["error_description"]
    assert (completions.received, completions.repeated, completions.wakes) == (1, 1, 1)
    assert polls(box) == fetches  # nothing fetched for the replay


async def test_a_duplicated_webhook_wakes_the_call_once(box: Sandbox) -> None:
    box.faults.inject("webhook", "duplicate")
    async with webhook_server(box) as server:
        result = await call(server)
        [delivery] = await answered(box, 2)
        completions = completions_of(server)
    assert result["status"] == "completed"
    assert delivery.answers == [200, 200]
    assert (completions.received, completions.repeated, completions.wakes) == (1, 1, 1)
    assert polls(box) == 1


async def test_a_dropped_webhook_leaves_the_safety_net_polling_to_complete_the_call(box: Sandbox) -> None:
    box.faults.inject("webhook", "drop")
    async with webhook_server(box, webhook_poll_interval=0.2) as server:
        result = await call(server)
        completions = completions_of(server)
    assert result["status"] == "completed"
    assert [(d.fault, d.answers) for d in box.deliveries] == [("drop", [])]
    assert completions.wakes == 0 and polls(box) >= 1


async def test_a_delayed_webhook_still_ends_the_wait_and_the_fetch_comes_after_it(box: Sandbox) -> None:
    box.faults.inject("webhook", "delay", seconds=0.5)
    async with webhook_server(box) as server:
        completions = completions_of(server)
        polls_at_wake: list[int] = []
        publish = completions.publish

        async def recording(run_id: str) -> None:
            polls_at_wake.append(polls(box))
            await publish(run_id)

        completions.publish = recording
        result = await call(server)
    assert result["status"] == "completed"
    run = box.runs[0]
    assert run.status == "completed"
    assert polls_at_wake == [0] and polls(box) == 1  # no poll before the late webhook, one fetch after it


async def test_a_call_that_starts_waiting_after_its_webhook_came_goes_on_at_once(box: Sandbox) -> None:
    async with webhook_server(box) as server:
        completions = completions_of(server)
        first = await call(server)
        with completions.watch(first["run_id"]) as watch:
            assert watch.fired  # announced before anybody watched


async def test_without_a_webhook_secret_runs_carry_no_callback_and_there_is_no_route(box: Sandbox) -> None:
    async with webhook_server(box, webhook_secret=None, webhook_poll_interval=15.0) as server:
        result = await call(server)
        async with httpx.AsyncClient() as http:
            route = await http.post(f"{server.url}{WEBHOOK_PATH}", content=b"{}")
        assert server.completions is None
    assert result["status"] == "completed"
    assert "callback_url" not in box.requests_for("create_technique_run")[0].body
    assert box.deliveries == [] and route.status_code == 404


async def test_the_route_refuses_unsigned_oversized_and_non_post_requests(box: Sandbox) -> None:
    async with webhook_server(box) as server, httpx.AsyncClient() as http:
        url = f"{server.url}{WEBHOOK_PATH}"
        unsigned = await http.post(url, content=b'{"id": "evt_1"}')
        huge = await http.post(url, content=b"x" * (MAX_BODY + 1), headers={"Flora-Signature": "t=1,v1=00"})
        got = await http.get(url)
    assert (unsigned.status_code, unsigned.json()["error"]) == (400, "invalid_webhook")
    assert "no Flora-Signature" in unsigned.json()["error_description"]
    assert huge.status_code == 413
    assert got.status_code == 405


@pytest.mark.parametrize(("public", "hook"), [
    ("https://flora.example.com/mcp", "https://flora.example.com/webhooks/flora"),
    ("https://flora.example.com/mcp/", "https://flora.example.com/webhooks/flora"),
    ("https://flora.example.com", "https://flora.example.com/webhooks/flora"),
    ("https://example.com/team/mcp", "https://example.com/team/webhooks/flora"),
    ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/webhooks/flora"),
])
def test_the_webhook_url_is_derived_from_the_public_url(public: str, hook: str) -> None:
    assert webhook_url(public) == hook
