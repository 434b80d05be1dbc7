"""tools/list from prepared tools: for every protocol version the same tools as the SDK's own dump of a
`ListToolsResult`, made once per version and definitions, not once per request."""

from __future__ import annotations

from typing import Any

import mcp.types as types
import pytest
from mcp_types.methods import serialize_server_result
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import prepared
from tests.support import mcp_client, settings_for


def sdk_dump(definitions: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """What the SDK sends for a handler's ListToolsResult of these definitions (its runner's two steps)."""
    result = types.ListToolsResult(tools=[types.Tool.model_validate(d) for d in definitions], ttl_ms=1,
                                   cache_scope="private")
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    tools: list[dict[str, Any]] = serialize_server_result("tools/list", version, dumped)["tools"]
    return tools


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["full", "compact"])
async def test_prepared_tools_are_the_sdks_dump_for_every_version(sandbox: Sandbox, mode: str) -> None:
    async with Toolkit(settings_for(sandbox, tools_mode=mode)) as kit:
        definitions = await kit.wait_for_tool_definitions()
    tools = prepared.PreparedTools(definitions)
    assert len(KNOWN_PROTOCOL_VERSIONS) >= 5
    for version in KNOWN_PROTOCOL_VERSIONS:
        assert tools.wire(version) == sdk_dump(definitions, version), version


@pytest.mark.anyio
@pytest.mark.parametrize(("client_mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_tools_list_is_dumped_once_per_version_not_per_request(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, client_mode: str, version: str) -> None:
    dumps: list[str] = []
    real = prepared.serialize_server_result

    def counted(method: str, at: str, data: Any) -> dict[str, Any]:
        dumps.append(at)
        return real(method, at, data)

    monkeypatch.setattr(prepared, "serialize_server_result", counted)
    async with Toolkit(settings_for(sandbox)) as kit, mcp_client(kit, mode=client_mode) as client:
        first = await client.list_tools()
        second = await client.list_tools()
        definitions = await kit.wait_for_tool_definitions()
    assert dumps == [version]
    expected = sdk_dump(definitions, version)
    for listed in (first, second):
        # 2025-11-25 marks task support on the technique tools (server/tasks.py), on top of the prepared tools.
        got = [{k: v for k, v in t.model_dump(by_alias=True, mode="json", exclude_none=True).items()
                if k != "execution"} for t in listed.tools]
        assert got == expected
