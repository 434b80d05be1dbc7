"""Exported tools take the user's files as MCP tools do: the schema admits a path, the adapter's call uploads it.

An LLM pipeline (OpenAI, Anthropic, Gemini) gets the same media-input rules as an MCP client: a local path in an
image input is uploaded to FLORA's assets and the run gets the asset URL; a refused path sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.integrations.adapters import anthropic_tool_result, openai_tool_result
from flora_mcp.sandbox import Sandbox
from tests.media_support import (
    jpeg_bytes,
    photos_folder,  # noqa: F401 - the `folder` fixture
    write,
)
from tests.support import settings_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "gemini"])
async def test_an_exported_image_input_admits_a_local_path(sandbox: Sandbox, folder: Path, fmt: str) -> None:
    async with Toolkit(settings_for(sandbox, input_dirs=str(folder))) as kit:
        tools = kit.export_tools(fmt)
    text = json.dumps(tools)
    assert '"format": "uri"' not in text  # a client that checks formats would refuse a path
    [cctv] = [t for t in tools if "cctv" in json.dumps(t.get("name") or t.get("function", {}).get("name"))]
    schema = cctv.get("input_schema") or cctv.get("parameters") or cctv["function"]["parameters"]
    image = schema["properties"]["input_image"]
    assert "local" in image["description"].lower() or "path" in image["description"].lower()
    if fmt != "gemini":  # Gemini's schema dialect is OpenAPI's subset, not JSON Schema
        Draft202012Validator(schema).validate({"input_image": str(folder / "me.jpg")})


async def test_an_openai_call_with_a_local_path_uploads_it_and_runs_on_the_asset(sandbox: Sandbox,
                                                                                 folder: Path) -> None:
    async with Toolkit(settings_for(sandbox, input_dirs=str(folder))) as kit:
        tools = kit.tool_definitions()
        call = {"id": "call_1", "type": "function",
                "function": {"name": "cctv-cam", "arguments": json.dumps({"input_image": "me.jpg"})}}
        answer = await openai_tool_result(kit, call, tools=tools)
    body = json.loads(answer["content"])
    assert body["status"] == "completed", body
    [asset] = sandbox.assets
    assert sandbox.runs[0].inputs == {"input_image": asset.to_json(sandbox.origin)["url"]}
    assert sandbox.asset_file(asset.asset_id).read_bytes() == (folder / "me.jpg").read_bytes()  # type: ignore
    assert body["uploads"][0]["source"] == str(folder / "me.jpg")


async def test_an_anthropic_call_with_a_refused_path_sends_nothing(sandbox: Sandbox, folder: Path,
                                                                   tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere" / "x.jpg", jpeg_bytes(300_000))
    mark = len(sandbox.requests)
    async with Toolkit(settings_for(sandbox, input_dirs=str(folder))) as kit:
        block = {"type": "tool_use", "id": "toolu_1", "name": "cctv-cam", "input": {"input_image": str(outside)}}
        answer = await anthropic_tool_result(kit, block)
        sent = [r.route for r in sandbox.requests[mark:]]
    assert answer["is_error"] is True
    assert "input_image" in json.dumps(answer) and str(outside) in json.dumps(answer)
    assert not [route for route in sent if "asset" in route or "run" in route], sent
