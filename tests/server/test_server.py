"""The MCP server in memory, through the SDK's own client, with the sandbox as FLORA."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from mcp import Client
from PIL import Image

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, settings_for

NAME_RULE = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")


@pytest.fixture
async def client(toolkit: Toolkit) -> AsyncIterator[Client]:
    async with mcp_client(toolkit) as c:
        yield c


@pytest.mark.anyio
async def test_tools_list_has_one_tool_per_technique_across_pages(sandbox: Sandbox, client: Client) -> None:
    listed = sandbox.state.catalog.visible(None)
    assert len(listed) > sandbox.config.page_size  # pagination is exercised
    assert any(t.slug is None for t in listed)
    tools = (await client.list_tools()).tools
    by_id = {(t.meta or {}).get("technique_id"): t for t in tools if t.meta}
    assert set(by_id) == {t.technique_id for t in listed}
    for technique in listed:
        tool = by_id[technique.technique_id]
        assert tool.title == technique.name
        if technique.slug:
            assert tool.name == technique.slug
        assert f"Costs ${technique.run_cost:.2f}" in (tool.description or "") or "Costs $" in (tool.description or "")
    names = [t.name for t in tools]
    assert len(set(names)) == len(names)
    assert all(NAME_RULE.match(n) for n in names)
    assert {"flora_get_run", "flora_list_runs", "flora_spend"} <= set(names)


@pytest.mark.anyio
async def test_names_are_the_same_on_every_start(sandbox: Sandbox) -> None:
    names = []
    for _ in range(2):
        async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit) as c:
            names.append([t.name for t in (await c.list_tools()).tools])
    assert names[0] == names[1]


@pytest.mark.anyio
async def test_cctv_cam_schema_is_exact(client: Client) -> None:
    tool = next(t for t in (await client.list_tools()).tools if t.name == "cctv-cam")
    assert tool.input_schema == {
        "type": "object",
        "properties": {"input_image": {
            "type": "string", "minLength": 1,
            "description": tool.input_schema["properties"]["input_image"]["description"]}},
        "required": ["input_image"],
        "additionalProperties": False,
    }
    assert "An image: an https URL, a data: URL, or a local file path" in (
        tool.input_schema["properties"]["input_image"]["description"])
    assert tool.output_schema is not None and tool.output_schema["required"] == ["status", "outputs"]
    assert tool.annotations is not None and tool.annotations.open_world_hint is True
    assert tool.annotations.read_only_hint is False and tool.annotations.idempotent_hint is False


@pytest.mark.anyio
async def test_calling_cctv_cam_returns_a_real_grayscale_image_with_progress(sandbox: Sandbox, client: Client) -> None:
    sandbox.state.run_delay = 0.4
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await client.call_tool("cctv-cam", {"input_image": sandbox.sample_url("street.png")},
                                    progress_callback=on_progress)
    assert result.is_error is False
    data = result.structured_content
    assert data is not None and data["status"] == "completed"
    assert data["charged_cost"] == 0.05 and data["run_id"].startswith("run_")
    assert data["technique"]["slug"] == "cctv-cam"
    url = data["outputs"][0]["url"]
    text = result.content[0].text  # type: ignore[union-attr]
    assert url in text and "$0.05" in text
    async with httpx.AsyncClient() as http:
        image = Image.open(io.BytesIO((await http.get(url)).content)).convert("RGB")
    red, green, blue = image.split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()  # grayscale
    assert len(set(red.tobytes())) > 16  # a real picture, not a blank
    values = [p[0] for p in seen]
    assert len(values) >= 3 and values == sorted(values) and len(set(values)) == len(values)
    assert values[-1] == 100.0 and all(t == 100.0 for _, t, _ in seen)
    assert seen[-1][2] == "completed"


@pytest.mark.anyio
async def test_invalid_arguments_name_every_field_and_send_nothing(sandbox: Sandbox, client: Client) -> None:
    result = await client.call_tool("side-by-side-composite", {"left_image": "not a url", "extra": 1})
    assert result.is_error is True
    data = result.structured_content or {}
    assert data["status"] == "invalid" and data["error_code"] == "invalid_arguments"
    fields = {f["field"] for f in data["error_fields"]}
    assert fields == {"left_image", "right_image", "extra"}
    assert not sandbox.requests_for("create_technique_run")
    assert "nothing was submitted" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_failed_run_is_an_error_result_with_its_run_id(sandbox: Sandbox, client: Client) -> None:
    result = await client.call_tool("flaky-provider", {"prompt": "please fail"})
    data = result.structured_content or {}
    assert result.is_error is True
    assert data["status"] == "failed" and data["error_code"] == "provider_error" and data["run_id"]


@pytest.mark.anyio
async def test_unknown_tool_is_an_error_result_not_a_protocol_error(client: Client) -> None:
    result = await client.call_tool("no-such-technique", {})
    assert result.is_error is True
    assert (result.structured_content or {})["error_code"] == "unknown_tool"


ERROR_CODES = [
    (400, "invalid_json", "bug"),
    (422, "input_validation_error", "Fix the inputs"),
    (401, "unauthorized", "FLORA_API_KEY"),
    (401, "invalid_api_key", "FLORA_API_KEY"),
    (402, "insufficient_credits", "Top up"),
    (403, "forbidden", "access"),
    (404, "not_found", "does not know"),
    (429, "rate_limited", "retry after 7 s"),
    (500, "unknown_error", "try again"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "code", "hint"), ERROR_CODES, ids=[c for _, c, _ in ERROR_CODES])
async def test_every_error_code_becomes_an_error_result(sandbox: Sandbox, status: int, code: str, hint: str) -> None:
    # No retries: each code must reach the agent as such (429 and 5xx are retried in the reliability tests).
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit, mcp_client(kit) as client:
        sandbox.faults.inject(route="create_technique_run", kind="status", status=status, code=code,
                              retry_after=7 if code == "rate_limited" else None, message=f"sandbox says {code}")
        result = await client.call_tool("qr-code-generator", {"content": "hello"})
    data = result.structured_content or {}
    assert result.is_error is True
    assert data["error_code"] in (code, "outcome_unknown")
    if status < 500:
        assert data["error_code"] == code
        assert data["error_message"] == f"sandbox says {code}"
        assert hint in data["next_step"]
    assert data["request_id"].startswith("req_")
    text = result.content[0].text  # type: ignore[union-attr]
    assert data["request_id"] in text and "Traceback" not in text


@pytest.mark.anyio
async def test_field_errors_from_flora_reach_the_agent(sandbox: Sandbox, client: Client) -> None:
    # An input FLORA rejects although our schema allows it: a URL on a host the sandbox refuses to fetch.
    result = await client.call_tool("cctv-cam", {"input_image": "https://example.com/a.png"})
    data = result.structured_content or {}
    assert result.is_error is True and data["error_code"] == "input_validation_error"
    assert [f["field"] for f in data["error_fields"]] == ["input_image"]


@pytest.mark.anyio
async def test_runs_are_resources_and_spend_is_tracked(sandbox: Sandbox, client: Client) -> None:
    result = await client.call_tool("qr-code-generator", {"content": "resource me"})
    run_id = (result.structured_content or {})["run_id"]
    resources = (await client.list_resources()).resources
    assert f"flora://runs/{run_id}" in {str(r.uri) for r in resources}
    body = json.loads((await client.read_resource(f"flora://runs/{run_id}")).contents[0].text)  # type: ignore[union-attr]
    assert body["status"] == "completed" and body["inputs"] == {"content": "resource me"}
    spend = await client.call_tool("flora_spend", {})
    data = (spend.structured_content or {})["data"]
    assert data["session_spend"] == pytest.approx(0.01) or data["session_spend"] > 0
    assert data["by_technique"][0]["runs"] == 1


@pytest.mark.anyio
async def test_tools_list_waits_for_a_catalog_still_loading(sandbox: Sandbox) -> None:
    kit = Toolkit(settings_for(sandbox))
    try:
        async with mcp_client(kit) as c, anyio.create_task_group() as tg:
            tg.start_soon(kit.load_catalog)
            tools = (await c.list_tools()).tools
            assert any(t.name == "cctv-cam" for t in tools)
    finally:
        await kit.aclose()
