"""The technique list, followed page by page to its end, against a sandbox whose pages are smaller than its catalog.

flora-mcp asks for 100 techniques a page; the sandbox's catalog is smaller than that, so a sandbox with default
settings answers everything on one page and a client that reads only the first page passes. Here the sandbox caps
every page at PAGE (its `max_page_size`), so the catalog takes several pages, as FLORA's does.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import mcp_client, sandbox_config, settings_for

PAGE = 2


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(page_size=PAGE, max_page_size=PAGE)) as box:
        yield box


def list_requests(box: Sandbox) -> list[dict[str, str]]:
    """The query of every `GET /techniques` the sandbox answered, in order."""
    return [r.query for r in box.requests_for("list_techniques")]


@pytest.mark.anyio
async def test_every_page_is_read_and_every_technique_becomes_a_tool(sandbox: Sandbox) -> None:
    catalog = sandbox.state.catalog.visible(None)
    pages = math.ceil(len(catalog) / PAGE)
    assert pages >= 4  # the test means something only if the catalog spans several pages
    async with Toolkit(settings_for(sandbox)) as kit:
        tools = kit.catalog.tools.values()
        assert sorted(t.technique.technique_id for t in tools) == sorted(t.technique_id for t in catalog)
    queries = list_requests(sandbox)
    assert len(queries) == pages
    assert "cursor" not in queries[0]
    assert all(q.get("cursor") for q in queries[1:])
    assert len({q["cursor"] for q in queries[1:]}) == pages - 1  # each page asked for once, in turn


@pytest.mark.anyio
async def test_a_query_is_sent_on_every_page(sandbox: Sandbox) -> None:
    matching = [t for t in sandbox.state.catalog.visible(None) if t.matches("image")]
    assert len(matching) > 2 * PAGE
    async with Toolkit(settings_for(sandbox, query="image")) as kit:
        found = {t.technique.technique_id for t in kit.catalog.tools.values()}
    assert found == {t.technique_id for t in matching}
    queries = list_requests(sandbox)
    assert len(queries) == math.ceil(len(matching) / PAGE)
    assert all(q.get("query") == "image" for q in queries)


@pytest.mark.anyio
async def test_tools_list_over_mcp_has_the_techniques_of_every_page(sandbox: Sandbox) -> None:
    catalog = sandbox.state.catalog.visible(None)
    async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit) as client:
        tools = (await client.list_tools()).tools
    listed = {(t.meta or {}).get("technique_id") for t in tools} - {None}
    assert listed == {t.technique_id for t in catalog}
    assert len(sandbox.requests_for("list_techniques")) == math.ceil(len(catalog) / PAGE)


@pytest.mark.anyio
async def test_a_catalog_larger_than_the_clients_own_page_size_is_read_whole() -> None:
    """With FLORA's own cap (100 a page) and more techniques than that: the client's 100-item pages, followed."""
    async with serve_sandbox(sandbox_config(extra_techniques=105)) as box:
        total = len(box.state.catalog.visible(None))
        assert total > 100
        async with Toolkit(settings_for(box)) as kit:
            assert len(kit.catalog) == total
        queries = list_requests(box)
        assert [q.get("limit") for q in queries] == ["100", "100"]
        assert "cursor" not in queries[0] and queries[1].get("cursor")


def routes(box: Sandbox) -> list[str]:
    return [r.route for r in box.state.requests if r.route in ("list_techniques", "get_technique")]


@pytest.mark.anyio
async def test_full_mode_asks_for_schemas_while_the_later_pages_are_listed(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, tools_mode="full")) as kit:
        prefetched = sorted(t.technique.technique_id for t in kit.catalog.tools.values())
    order = routes(sandbox)
    last_page = len(order) - 1 - order[::-1].index("list_techniques")
    assert "get_technique" in order[:last_page]  # a page's schemas did not wait for the last page
    schemas = order.count("get_technique")
    # What is served is what a load that lists first gets.
    sandbox.state.requests.clear()
    async with Toolkit(settings_for(sandbox, tools_mode="auto")) as kit:
        assert sorted(t.technique.technique_id for t in kit.catalog.tools.values()) == prefetched
    order = routes(sandbox)
    assert "get_technique" not in order[:order.count("list_techniques")]  # auto: the count first (compact or not)
    assert order.count("get_technique") == schemas > 0  # each summary's schema asked for once, either way


@pytest.mark.anyio
async def test_full_mode_leaves_out_a_prefetched_technique_that_is_gone_and_fails_on_one_that_failed(
        sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from flora_mcp.api.errors import APIStatusError

    summaries = list(sandbox.state.catalog.visible(None))
    async with Toolkit(settings_for(sandbox, tools_mode="full")) as kit:
        everything = len(kit.catalog)
    assert everything == len(summaries)
    sandbox.faults.inject(route="get_technique", kind="status", status=404, code="not_found")
    with caplog.at_level(logging.WARNING, logger="flora_mcp.core.catalog"):
        async with Toolkit(settings_for(sandbox, tools_mode="full", max_retries=0)) as kit:
            assert len(kit.catalog) == everything - 1  # the one that is gone; the others served
            served = {tool.technique.slug for tool in kit.catalog.tools.values()}
    [gone] = [s.slug for s in summaries if s.slug not in served]
    [line] = [r.getMessage() for r in caplog.records if r.name == "flora_mcp.core.catalog"]
    assert line.startswith(f"leaving out technique {gone}: ") and len(line) > len(f"leaving out technique {gone}: ")
    sandbox.faults.inject(route="get_technique", kind="status", status=500)
    with pytest.raises(APIStatusError) as failed:  # that one error, not a group of one
        async with Toolkit(settings_for(sandbox, tools_mode="full", max_retries=0)) as kit:
            await kit.load_catalog()
    assert failed.value.status_code == 500
