"""Compact mode: three tools reach every technique, tools/list stays within 2,026 bytes, and a run through
flora_run_technique is the typed tool's run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client

from flora_mcp.core.builtin import COMPACT_LIST_BUDGET
from flora_mcp.core.toolkit import COMPACT_THRESHOLD, Toolkit
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.support import TEST_KEY, mcp_client, sandbox_config, settings_for

COMPACT_NAMES = {"flora_search_techniques", "flora_describe_technique", "flora_run_technique", "flora_get_run",
                 "flora_list_runs", "flora_spend"}


@asynccontextmanager
async def served(box: Sandbox, **settings: Any) -> AsyncIterator[Client]:
    async with Toolkit(settings_for(box, **settings)) as kit, mcp_client(kit) as client:
        yield client


async def structured(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.parametrize("max_wait", [20.0, 50.0, 3600.0])
@pytest.mark.anyio
async def test_compact_tools_list_fits_in_2026_bytes(sandbox: Sandbox, max_wait: float) -> None:
    async with served(sandbox, tools_mode="compact", max_wait=max_wait) as client:
        listed = await client.list_tools()
    assert {t.name for t in listed.tools} == COMPACT_NAMES
    size = len(listed.model_dump_json(by_alias=True, exclude_none=True).encode())
    assert size <= COMPACT_LIST_BUDGET == 2026
    assert all(t.annotations is not None and t.description for t in listed.tools)
    run = next(t for t in listed.tools if t.name == "flora_run_technique")
    assert run.annotations is not None and run.annotations.read_only_hint is not True
    assert run.annotations.destructive_hint is False and "paid" in (run.description or "")


@pytest.mark.parametrize(("visible", "compact"), [
    pytest.param(COMPACT_THRESHOLD, False, id="40 techniques: one tool each"),
    pytest.param(COMPACT_THRESHOLD + 1, True, id="41 techniques: compact"),
])
@pytest.mark.anyio
async def test_auto_mode_turns_compact_above_40_techniques(visible: int, compact: bool) -> None:
    slugs = [f"synthetic-{i:04d}" for i in range(1, visible + 1)]
    config = sandbox_config(extra_techniques=50, keys={TEST_KEY: Account(techniques=slugs)})
    async with serve_sandbox(config) as box, served(box, tools_mode="auto") as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert (names == COMPACT_NAMES) is compact
    assert len(names) == (6 if compact else visible + 3)


@pytest.mark.anyio
async def test_search_gives_name_inputs_and_cost_on_one_line(sandbox: Sandbox) -> None:
    async with served(sandbox, tools_mode="compact") as client:
        qr = await structured(client, "flora_search_techniques", {"query": "QR code"})
        grade = await structured(client, "flora_search_techniques", {"query": "colour grade"})
        everything = await structured(client, "flora_search_techniques", {})
        nothing = await structured(client, "flora_search_techniques", {"query": "teleport"})
    assert qr["data"] == {"count": 1, "techniques": ["qr-code-generator: QR Code Generator (content:text) $0.01"]}
    assert grade["data"]["techniques"] == [
        "color-grade-image: Color Grade Image (input_image:imageUrl, grade?:text) $0.02"]
    assert everything["data"]["count"] == len(sandbox.state.catalog.techniques)
    assert nothing["status"] == "completed" and nothing["data"] == {"count": 0, "techniques": []}


@pytest.mark.parametrize("ref", ["cctv-cam", "CCTV Cam", "tech_"])
@pytest.mark.anyio
async def test_describe_gives_the_typed_tools_schema_and_cost(sandbox: Sandbox, ref: str) -> None:
    technique = sandbox.state.catalog.find("cctv-cam")
    assert technique is not None
    ref = technique.technique_id if ref == "tech_" else ref
    async with served(sandbox, tools_mode="full") as full_client:
        typed = next(t for t in (await full_client.list_tools()).tools if t.name == "cctv-cam")
    async with served(sandbox, tools_mode="compact") as client:
        described = await structured(client, "flora_describe_technique", {"technique": ref})
    assert described["data"]["technique"] == "cctv-cam"
    assert described["data"]["inputSchema"] == typed.input_schema
    assert described["data"]["run_cost"] == technique.run_cost


@pytest.mark.anyio
async def test_an_unknown_technique_is_an_error_result_that_points_to_search(sandbox: Sandbox) -> None:
    async with served(sandbox, tools_mode="compact") as client:
        for name, args in (("flora_describe_technique", {"technique": "teleport"}),
                           ("flora_run_technique", {"technique": "teleport", "inputs": {}})):
            result = await client.call_tool(name, args)
            assert result.is_error is True
            data = result.structured_content or {}
            assert data["error_code"] == "unknown_technique" and "flora_search_techniques" in data["next_step"]
    assert sandbox.requests_for("create_technique_run") == []


def _shape(data: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two runs of one technique: all but the ids, URLs and timing."""
    return {
        **{k: v for k, v in data.items() if k not in ("run_id", "outputs", "request_id", "session_spend")},
        "outputs": [{"output_id": o["output_id"], "type": o["type"]} for o in data["outputs"]],
    }


@pytest.mark.anyio
async def test_run_technique_runs_exactly_like_the_typed_tool(sandbox: Sandbox) -> None:
    async with served(sandbox, tools_mode="full") as client:
        typed = await structured(client, "qr-code-generator", {"content": "compact"})
    async with served(sandbox, tools_mode="compact") as client:
        compact = await structured(client, "flora_run_technique",
                                   {"technique": "qr-code-generator", "inputs": {"content": "compact"}})
    assert typed["status"] == compact["status"] == "completed"
    assert _shape(compact) == _shape(typed)
    assert compact["technique"]["slug"] == "qr-code-generator" and compact["charged_cost"] == 0.01
    assert compact["outputs"][0]["url"].startswith(sandbox.origin)
    bodies = [r.body for r in sandbox.requests_for("create_technique_run")]
    assert len(bodies) == 2 and bodies[0]["inputs"] == bodies[1]["inputs"]  # the same request reached FLORA


@pytest.mark.anyio
async def test_run_technique_validates_against_the_techniques_schema(sandbox: Sandbox) -> None:
    bad = {"input_image": "not a url", "strength": 3}
    async with served(sandbox, tools_mode="full") as client:
        typed = await client.call_tool("cctv-cam", bad)
    async with served(sandbox, tools_mode="compact") as client:
        compact = await client.call_tool("flora_run_technique", {"technique": "cctv-cam", "inputs": bad})
        not_an_object = await client.call_tool("flora_run_technique", {"technique": "cctv-cam", "inputs": "x"})
    assert typed.is_error is compact.is_error is True
    typed_data, compact_data = typed.structured_content or {}, compact.structured_content or {}
    assert compact_data["status"] == "invalid" and compact_data["error_fields"] == typed_data["error_fields"]
    assert {f["field"] for f in compact_data["error_fields"]} == {"input_image", "strength"}
    assert not_an_object.is_error is True
    assert (not_an_object.structured_content or {})["error_fields"] == [
        {"field": "inputs", "message": "must be of type object, got str"}]
    assert sandbox.requests_for("create_technique_run") == []  # refused before anything reached FLORA


# tools/list does not wait for what it does not need --------------------------------------------------------------


@pytest.mark.parametrize(("mode", "extra"), [
    pytest.param("compact", 0, id="compact"),
    pytest.param("auto", COMPACT_THRESHOLD, id="auto above the threshold"),
])
@pytest.mark.anyio
async def test_compact_tools_are_listed_before_any_schema_is_fetched(mode: str, extra: int) -> None:
    async with serve_sandbox(sandbox_config(extra_techniques=extra)) as box:
        kit = Toolkit(settings_for(box, tools_mode=mode))
        schemas_allowed = anyio.Event()
        kit.defer_schemas(until=schemas_allowed)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(kit.load_catalog)
                with anyio.fail_after(10):
                    definitions = await kit.wait_for_tool_definitions()
                assert {d["name"] for d in definitions} == COMPACT_NAMES
                assert box.requests_for("get_technique") == []
                schemas_allowed.set()
                with anyio.fail_after(10):
                    catalog = await kit.wait_for_catalog()
            assert len(catalog) == len(box.state.catalog.techniques)
            assert box.requests_for("get_technique")  # the summaries' schemas came after
            assert await kit.wait_for_tool_definitions() == definitions
        finally:
            await kit.aclose()


@pytest.mark.anyio
async def test_full_mode_waits_for_every_schema_even_when_asked_to_defer(sandbox: Sandbox) -> None:
    kit = Toolkit(settings_for(sandbox, tools_mode="full"))
    kit.defer_schemas(until=anyio.Event())  # never set: full mode's tools/list needs the schemas anyway
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kit.load_catalog)
            with anyio.fail_after(10):
                definitions = await kit.wait_for_tool_definitions()
        assert len(definitions) == len(sandbox.state.catalog.techniques) + 3
    finally:
        await kit.aclose()


@pytest.mark.anyio
async def test_a_call_that_needs_the_schemas_fetches_them_at_once() -> None:
    async with serve_sandbox(sandbox_config(extra_techniques=COMPACT_THRESHOLD)) as box:
        kit = Toolkit(settings_for(box, tools_mode="auto"))
        kit.defer_schemas(until=anyio.Event())  # never set: only the need opens the way
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(kit.load_catalog)
                with anyio.fail_after(10):
                    assert {d["name"] for d in await kit.wait_for_tool_definitions()} == COMPACT_NAMES
                    result = await kit.call("flora_search_techniques", {"query": "synthetic"})
            assert result.status == "completed" and result.data is not None
            assert result.data["count"] == COMPACT_THRESHOLD
        finally:
            await kit.aclose()
