"""A refreshed catalog reaches connected clients: list_changed on legacy sessions, ToolsListChanged on listen streams.

Start-up over stdio too: `initialize` is answered while the catalog is still loading.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp.server.subscriptions import ToolsListChanged

from flora_mcp.core.cache import CatalogCache
from flora_mcp.core.refresh import CatalogRefresher
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from flora_mcp.server.notifications import ToolListNotifier
from tests.support import TEST_KEY, mcp_client, sandbox_config, sandbox_env, settings_for, stdio_session

FIRST = ["cctv-cam", "qr-code-generator"]


@pytest.fixture
async def narrowed() -> AsyncIterator[Sandbox]:
    """A sandbox whose key sees two techniques until a test widens `keys[TEST_KEY].techniques`."""
    async with serve_sandbox(sandbox_config(keys={TEST_KEY: Account(techniques=list(FIRST))})) as box:
        yield box


class Notifications:
    """What a client received, with a wait for the next tools/list_changed."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self._changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        self.received.append(message)
        if isinstance(message, types.ToolListChangedNotification):
            self._changed.set()

    @property
    def list_changed(self) -> int:
        return sum(isinstance(m, types.ToolListChangedNotification) for m in self.received)

    async def wait_for_list_changed(self, timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            await self._changed.wait()


def widen(box: Sandbox) -> None:
    box.config.keys[TEST_KEY].techniques = None


@pytest.mark.anyio
async def test_a_refresh_that_changes_the_tools_tells_a_legacy_client(narrowed: Sandbox) -> None:
    notifier = ToolListNotifier()
    seen = Notifications()
    async with (Toolkit(settings_for(narrowed)) as kit,
                mcp_client(kit, notifier=notifier, message_handler=seen) as client):
        refresher = CatalogRefresher(kit, on_change=lambda: notifier.tools_changed(kit))
        before = {t.name for t in (await client.list_tools()).tools}
        assert set(FIRST) <= before and "color-grade-image" not in before
        widen(narrowed)
        assert await refresher.refresh() is True
        await seen.wait_for_list_changed()
        after = {t.name for t in (await client.list_tools()).tools}
        assert after > before and "color-grade-image" in after
        assert seen.list_changed == 1


@pytest.mark.anyio
async def test_a_refresh_without_changes_tells_nobody(narrowed: Sandbox) -> None:
    notifier = ToolListNotifier()
    seen = Notifications()
    async with (Toolkit(settings_for(narrowed)) as kit,
                mcp_client(kit, notifier=notifier, message_handler=seen) as client):
        await client.list_tools()
        told: list[int] = []

        async def on_change() -> None:
            told.append(await notifier.tools_changed(kit))

        assert await CatalogRefresher(kit, on_change=on_change).refresh() is False
        await client.call_tool("flora_spend", {})  # a round trip: a notification sent before it has arrived
        assert told == [] and seen.list_changed == 0
        assert len(narrowed.requests_for("list_techniques")) == 2


@pytest.mark.anyio
async def test_a_listen_stream_gets_tools_list_changed(narrowed: Sandbox) -> None:
    notifier = ToolListNotifier()
    async with (Toolkit(settings_for(narrowed)) as kit,
                mcp_client(kit, notifier=notifier, mode="2026-07-28") as client):
        refresher = CatalogRefresher(kit, on_change=lambda: notifier.tools_changed(kit))
        assert len((await client.list_tools()).tools) == len(FIRST) + 3
        assert notifier.sessions(kit) == 0  # a 2026-07-28 client is told through its listen stream instead
        async with client.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed is True
            widen(narrowed)
            assert await refresher.refresh() is True
            with anyio.fail_after(10):
                event = await subscription.__anext__()
        assert isinstance(event, ToolsListChanged)
        tools = (await client.list_tools(cache_mode="refresh")).tools
        assert len(tools) == len(narrowed.state.catalog.techniques) + 3


@pytest.mark.anyio
async def test_only_the_clients_of_the_changed_toolkit_are_told(narrowed: Sandbox) -> None:
    notifier = ToolListNotifier()
    seen_a, seen_b = Notifications(), Notifications()
    async with (Toolkit(settings_for(narrowed)) as kit_a, Toolkit(settings_for(narrowed)) as kit_b,
                mcp_client(kit_a, notifier=notifier, message_handler=seen_a) as client_a,
                mcp_client(kit_b, notifier=notifier, message_handler=seen_b) as client_b):
        await client_a.list_tools()
        await client_b.call_tool("flora_spend", {})  # a call makes a client known as well as a listing
        assert notifier.sessions(kit_a) == 1 and notifier.sessions(kit_b) == 1
        assert await notifier.tools_changed(kit_a) == 1
        await seen_a.wait_for_list_changed()
        await client_b.call_tool("flora_spend", {})
        assert seen_b.list_changed == 0


@pytest.mark.anyio
async def test_a_client_that_left_is_forgotten(narrowed: Sandbox) -> None:
    notifier = ToolListNotifier()
    async with Toolkit(settings_for(narrowed)) as kit:
        async with mcp_client(kit, notifier=notifier) as client:
            await client.list_tools()
            assert notifier.sessions(kit) == 1
        assert await notifier.tools_changed(kit) == 0  # no error for the departed client
        assert notifier.sessions(kit) == 0


@pytest.mark.anyio
async def test_a_failed_refresh_keeps_serving_the_catalog(narrowed: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    async with Toolkit(settings_for(narrowed, max_retries=0)) as kit:
        before = kit.tool_definitions()
        narrowed.faults.inject(route="list_techniques", status=503)
        widen(narrowed)
        with caplog.at_level(logging.WARNING, logger="flora_mcp.core.refresh"):
            assert await CatalogRefresher(kit).refresh() is False
        assert kit.tool_definitions() == before
        assert any("catalog refresh failed" in r.getMessage() for r in caplog.records)
        assert TEST_KEY not in caplog.text


@pytest.mark.anyio
async def test_the_periodic_refresh_re_lists_every_interval(narrowed: Sandbox) -> None:
    changes: list[int] = []
    async with Toolkit(settings_for(narrowed, catalog_refresh=0.05)) as kit:
        async def on_change() -> None:
            changes.append(len(kit.catalog))

        refresher = CatalogRefresher(kit, on_change=on_change)
        async with anyio.create_task_group() as tg:
            tg.start_soon(refresher.run, refresher.first_delay(None))
            with anyio.fail_after(10):
                while len(narrowed.requests_for("list_techniques")) < 3:
                    await anyio.sleep(0.01)
            widen(narrowed)
            with anyio.fail_after(10):
                while not changes:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert changes == [len(narrowed.state.catalog.techniques)]


# Over stdio ----------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_over_stdio_a_background_refresh_sends_list_changed(narrowed: Sandbox, tmp_path: Path) -> None:
    # A fresh cache of the narrow catalog; the server refreshes it after 1 s, and that refresh is held for 2 s more
    # so the client has surely listed (and become known) before the change lands.
    async with Toolkit(settings_for(narrowed, catalog_cache=str(tmp_path))) as kit:
        assert isinstance(kit.cache, CatalogCache) and kit.cache.load() is not None
    widen(narrowed)
    narrowed.faults.inject(route="list_techniques", kind="stall", seconds=2, when="after")
    seen = Notifications()
    env = sandbox_env(narrowed, FLORA_CATALOG_CACHE=str(tmp_path), FLORA_CATALOG_REFRESH="1")
    async with stdio_session([], env, message_handler=seen) as (session, _):
        with anyio.fail_after(20):
            assert {t.name for t in (await session.list_tools()).tools} == {*FIRST, "flora_get_run",
                                                                            "flora_list_runs", "flora_spend"}
        await seen.wait_for_list_changed(timeout=20)
        tools = (await session.list_tools()).tools
    assert len(tools) == len(narrowed.state.catalog.techniques) + 3


@pytest.mark.anyio
async def test_over_stdio_initialize_is_answered_while_the_catalog_loads(narrowed: Sandbox) -> None:
    # The list request is held for 5 s: initialize must not wait for it, tools/list must.
    narrowed.faults.inject(route="list_techniques", kind="stall", seconds=5, when="after")
    async with stdio_session([], sandbox_env(narrowed)) as (session, _):
        with anyio.fail_after(20):
            while not narrowed.requests_for("list_techniques"):
                await anyio.sleep(0.01)
        assert narrowed.requests_for("list_techniques")[0].status == 0  # initialized, the list still held
        with anyio.fail_after(20):
            tools = (await session.list_tools()).tools
        assert narrowed.requests_for("list_techniques")[0].status == 200
    assert len(tools) == len(FIRST) + 3
