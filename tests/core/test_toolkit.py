"""The Toolkit as a pipeline uses it, straight against the sandbox (no MCP), and its parity with the MCP server."""

from __future__ import annotations

import importlib.resources
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import zxingcpp
from PIL import Image

from flora_mcp import Toolkit, ToolResult
from flora_mcp.core.builtin import COMPACT_TOOLS, RUN_TOOLS
from flora_mcp.integrations.adapters import anthropic_tool_result, gemini_tool_result, openai_tool_result
from flora_mcp.integrations.export import FORMATS, name_map, validate_export
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import mcp_client, sandbox_config, settings_for

RUN_ID = re.compile(r"run_[0-9a-f]+")
REQUEST_ID = re.compile(r"req_[0-9A-Za-z]+")
MODES = ("full", "compact")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope lets the tests that only read share one sandbox and its toolkits.
    return "asyncio"


@pytest.fixture(scope="module")
async def shared_box() -> AsyncIterator[Sandbox]:
    """One sandbox for the tests that make no runs."""
    async with serve_sandbox(sandbox_config()) as box:
        yield box


@pytest.fixture(scope="module")
async def toolkits(shared_box: Sandbox) -> AsyncIterator[dict[str, Toolkit]]:
    """A loaded toolkit per tools mode on the shared sandbox."""
    async with (
        Toolkit(settings_for(shared_box, tools_mode="full")) as full,
        Toolkit(settings_for(shared_box, tools_mode="compact")) as compact,
    ):
        yield {"full": full, "compact": compact}


@pytest.mark.anyio
async def test_lists_one_tool_per_visible_technique_and_the_run_tools(
    shared_box: Sandbox, toolkits: dict[str, Toolkit]
) -> None:
    definitions = toolkits["full"].tool_definitions()
    by_id = {d["_meta"]["technique_id"]: d for d in definitions if "_meta" in d}
    techniques = shared_box.state.catalog.visible(None)
    assert set(by_id) == {t.technique_id for t in techniques}
    for technique in techniques:
        tool = by_id[technique.technique_id]
        assert tool["title"] == technique.name and f"${technique.run_cost:.2f}" in tool["description"]
        assert set(tool["inputSchema"]["properties"]) == {port.id for port in technique.inputs}
    names = [d["name"] for d in definitions]
    assert len(names) == len(set(names)) == len(techniques) + len(RUN_TOOLS)
    assert set(RUN_TOOLS) <= set(names)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_export_passes_its_formats_checks(
    toolkits: dict[str, Toolkit], fmt: str, mode: str
) -> None:
    definitions = toolkits[mode].tool_definitions()
    exported = toolkits[mode].export_tools(fmt)
    assert validate_export(fmt, exported) == []
    assert len(exported) == len(definitions)
    # Catalog names are valid everywhere, so no format renames a tool.
    assert name_map(definitions, fmt) == {d["name"]: d["name"] for d in definitions}
    if mode == "compact":
        assert {d["name"] for d in definitions} == set(COMPACT_TOOLS) | set(RUN_TOOLS)


@pytest.mark.anyio
async def test_every_technique_is_a_strict_openai_tool(toolkits: dict[str, Toolkit]) -> None:
    toolkit = toolkits["full"]
    techniques = {d["name"] for d in toolkit.tool_definitions() if "_meta" in d}
    strict = {t["function"]["name"] for t in toolkit.export_tools("openai") if t["function"]["strict"]}
    assert techniques <= strict


@pytest.mark.anyio
async def test_an_unknown_export_format_is_a_value_error(toolkits: dict[str, Toolkit]) -> None:
    with pytest.raises(ValueError, match="unknown format 'claude'"):
        toolkits["full"].export_tools("claude")


@pytest.mark.anyio
async def test_a_call_returns_real_outputs_its_cost_and_strictly_rising_progress(
    sandbox: Sandbox, toolkit: Toolkit
) -> None:
    seen: list[tuple[float, str]] = []

    async def on_progress(percent: float, message: str) -> None:
        seen.append((percent, message))

    result = await toolkit.call("qr-code-generator", {"content": "https://flora.ai"}, progress=on_progress)
    assert isinstance(result, ToolResult) and not result.is_error
    assert result.status == "completed" and RUN_ID.fullmatch(result.run_id or "")
    assert result.technique is not None and result.technique.slug == "qr-code-generator"
    assert result.charged_cost == 0.01 and result.session_spend == 0.01
    [output] = result.outputs
    assert output.url.startswith(f"{sandbox.origin}/files/runs/{result.run_id}/")
    async with httpx.AsyncClient() as http:
        [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO((await http.get(output.url)).content)))
    assert code.text == "https://flora.ai"
    percents = [p for p, _ in seen]
    assert len(percents) >= 3 and all(a < b for a, b in zip(percents, percents[1:], strict=False))
    assert seen[-1] == (100.0, "completed")


INVALID = [
    pytest.param("qr-code-generator", {}, {"content"}, id="missing-required"),
    pytest.param("qr-code-generator", {"content": 5}, {"content"}, id="wrong-type"),
    pytest.param("qr-code-generator", {"content": ""}, {"content"}, id="empty"),
    pytest.param("qr-code-generator", {"content": "x", "colour": "red"}, {"colour"}, id="unknown-input"),
    pytest.param("cctv-cam", {"input_image": "not a url"}, {"input_image"}, id="not-a-url"),
    pytest.param("side-by-side-composite", {"left_image": "nope", "extra": 1},
                 {"left_image", "right_image", "extra"}, id="every-field-named"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "arguments", "fields"), INVALID)
async def test_invalid_arguments_are_refused_before_anything_reaches_flora(
    sandbox: Sandbox, toolkit: Toolkit, tool: str, arguments: dict[str, Any], fields: set[str]
) -> None:
    result = await toolkit.call(tool, arguments)
    assert result.is_error and result.status == "invalid" and result.error_code == "invalid_arguments"
    assert {f.field for f in result.error_fields} == fields
    assert result.run_id is None and result.charged_cost is None
    assert "nothing was submitted" in (result.next_step or "")
    assert sandbox.requests_for("create_technique_run") == []


@pytest.mark.anyio
async def test_an_unknown_tool_is_an_error_result(sandbox: Sandbox, toolkit: Toolkit) -> None:
    result = await toolkit.call("no-such-technique", {"prompt": "x"})
    assert result.is_error and result.error_code == "unknown_tool"
    assert sandbox.requests_for("create_technique_run") == []


@pytest.mark.anyio
async def test_a_failed_run_is_a_failed_result_with_its_run_id_and_no_charge(toolkit: Toolkit) -> None:
    result = await toolkit.call("flaky-provider", {"prompt": "please fail"})
    assert result.is_error and result.status == "failed"
    assert result.error_code == "provider_error" and result.error_message
    assert RUN_ID.fullmatch(result.run_id or "") and not result.charged_cost
    assert result.run_id and result.run_id in result.summary()


@pytest.mark.anyio
async def test_each_adapter_runs_a_real_call_from_its_apis_tool_call_block(sandbox: Sandbox, toolkit: Toolkit) -> None:
    image = sandbox.sample_url("street.png")
    tools = toolkit.tool_definitions()
    answers: dict[str, Any] = {}

    async def anthropic() -> None:
        block = {"type": "tool_use", "id": "toolu_1", "name": "soft-focus", "input": {"input_image": image}}
        answers["anthropic"] = await anthropic_tool_result(toolkit, block, tools=tools)

    async def openai() -> None:
        # Strict mode: the optional radius comes as null, which means "leave it out".
        call = {"id": "call_1", "type": "function",
                "function": {"name": "soft-focus", "arguments": json.dumps({"input_image": image, "radius": None})}}
        answers["openai"] = await openai_tool_result(toolkit, call, tools=tools)

    async def gemini() -> None:
        call = {"function_call": {"name": "soft-focus", "args": {"input_image": image, "radius": "2"}}}
        answers["gemini"] = await gemini_tool_result(toolkit, call, tools=tools)

    async with anyio.create_task_group() as group:
        for adapter in (anthropic, openai, gemini):
            group.start_soon(adapter)
    assert answers["anthropic"]["is_error"] is False
    assert json.loads(answers["anthropic"]["content"][1]["text"])["status"] == "completed"
    assert json.loads(answers["openai"]["content"])["status"] == "completed"
    assert answers["gemini"]["function_response"]["response"]["output"]["status"] == "completed"
    inputs = sorted((run.inputs for run in sandbox.runs), key=len)
    assert inputs == [{"input_image": image}, {"input_image": image}, {"input_image": image, "radius": "2"}]


# --- the MCP server and the toolkit give the same results ---------------------------------------------------------


def comparable(structured: dict[str, Any]) -> dict[str, Any]:
    """The result with what must differ between two calls (run and request ids) masked."""
    text = REQUEST_ID.sub("req_*", RUN_ID.sub("run_*", json.dumps(structured, sort_keys=True)))
    return dict(json.loads(text))


# (tool, arguments, settings, status FLORA answers the create request with, expected status): one of each kind.
SAME_CALLS = [
    pytest.param("qr-code-generator", {"content": "same answer"}, {}, None, "completed", id="completed"),
    pytest.param("qr-code-generator", {"content": "no credits"}, {}, 402, "error", id="flora-refuses"),
    pytest.param("side-by-side-composite", {"left_image": "nope", "extra": 1}, {}, None, "invalid",
                 id="invalid-arguments"),
    pytest.param("cctv-cam", {"input_image": "http://127.0.0.1/a.png"}, {"max_cost_per_call": 0.02}, None, "invalid",
                 id="over-the-cost-cap"),
    pytest.param("no-such-technique", {}, {}, None, "invalid", id="unknown-tool"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("tool", "arguments", "settings", "flora_status", "status"), SAME_CALLS)
async def test_the_mcp_server_and_the_toolkit_give_the_same_result(
    sandbox: Sandbox, tool: str, arguments: dict[str, Any], settings: dict[str, Any], flora_status: int | None,
    status: str,
) -> None:
    if flora_status is not None:
        sandbox.faults.inject(route="create_technique_run", status=flora_status, count=2)
    answers: dict[str, Any] = {}

    async def call_direct() -> None:
        async with Toolkit(settings_for(sandbox, **settings)) as direct:
            answers["direct"] = await direct.call(tool, arguments)

    async def call_served() -> None:
        # A toolkit of its own, so that both calls start from the same session spend.
        async with Toolkit(settings_for(sandbox, **settings)) as served, mcp_client(served) as client:
            answers["mcp"] = await client.call_tool(tool, arguments)

    async with anyio.create_task_group() as group:
        group.start_soon(call_direct)
        group.start_soon(call_served)
    result, over_mcp = answers["direct"], answers["mcp"]
    assert result.status == status
    assert over_mcp.structured_content is not None
    assert comparable(over_mcp.structured_content) == comparable(result.structured())
    assert over_mcp.is_error is result.is_error
    assert comparable({"text": over_mcp.content[0].text}) == comparable({"text": result.summary()})


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_the_mcp_server_lists_exactly_the_toolkits_tools(toolkits: dict[str, Toolkit], mode: str) -> None:
    toolkit = toolkits[mode]
    async with mcp_client(toolkit) as client:
        listed = (await client.list_tools()).tools
    definitions = toolkit.tool_definitions()
    assert [t.name for t in listed] == [d["name"] for d in definitions]
    for tool, definition in zip(listed, definitions, strict=True):
        assert tool.input_schema == definition["inputSchema"]
        assert tool.output_schema == definition.get("outputSchema")
        assert tool.description == definition["description"]


def test_the_package_is_marked_typed_for_type_checkers() -> None:
    # PEP 561: without the marker, mypy and pyright ignore the library's annotations. The wheel ships every file of
    # the package folder, so the marker here is the marker in the wheel.
    assert (importlib.resources.files("flora_mcp") / "py.typed").is_file()
