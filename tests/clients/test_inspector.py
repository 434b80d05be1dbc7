"""The MCP Inspector CLI (@modelcontextprotocol/inspector) lists and calls flora-mcp's tools: stdio, HTTP, SSE, in
both protocol eras (`--protocol-era legacy` negotiates 2025-11-25, `modern` 2026-07-28).

The CLI cannot show an elicitation: it builds its client with `elicit: false` (clients/cli/build/index.js of 2.12.0),
so it declares no elicitation capability in either era, and a call that needs the person's confirmation gets
flora-mcp's refusal saying how to proceed, never a silent run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.clients_support import NodeTools, flora_mcp_command, hosted_server, json_output, tail

# What a client config would pass: flora-mcp's own environment, given through the Inspector's -e options.
SERVER_ENV = ["-e", "FLORA_JOURNAL=:memory:", "-e", "FLORA_CATALOG_CACHE=off", "-e", "FLORA_POLL_INTERVAL=0.1"]
STDIO_SERVER = [*SERVER_ENV, "--", *flora_mcp_command(), "--sandbox"]


def tool_names(listing: dict[str, Any]) -> set[str]:
    return {tool["name"] for tool in listing["result"]["tools"]}


ERAS = ("legacy", "modern")


def assert_completed_qr_code(call: dict[str, Any], era: str = "legacy") -> None:
    result = call["result"]
    assert result["isError"] is False, result
    assert ("resultType" in result) is (era == "modern")  # a 2026-07-28 result names its type; 2025's do not
    data = result["structuredContent"]
    assert data["status"] == "completed", data
    assert data["technique"]["slug"] == "qr-code-generator"
    url = data["outputs"][0]["url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith(".png"), url
    text, link, preview = result["content"]
    assert url in text["text"]  # clients that show only text still get the URL
    assert (link["type"], link["uri"], link["mimeType"]) == ("resource_link", url, "image/png")
    assert preview["type"] == "image" and preview["_meta"]["preview"] is True and preview["data"]


def test_inspector_lists_every_technique_over_stdio_and_finds_no_schema_portability_errors(
        node_tools: NodeTools) -> None:
    # --strict: the Inspector checks each tool schema for what other clients reject; exit 6 on any error.
    proc = node_tools.inspector("--strict", "--method", "tools/list", *STDIO_SERVER)
    assert proc.returncode == 0, tail(proc.stderr)
    listing = json_output(proc)
    assert {"cctv-cam", "qr-code-generator", "flora_get_run", "flora_list_runs"} <= tool_names(listing)
    for tool in listing["result"]["tools"]:
        assert tool["description"] and tool["inputSchema"]["type"] == "object", tool["name"]


@pytest.mark.parametrize("era", ERAS)
def test_inspector_calls_a_sandbox_technique_over_stdio(node_tools: NodeTools, era: str) -> None:
    proc = node_tools.inspector("--protocol-era", era, "--method", "tools/call", "--tool-name", "qr-code-generator",
                                "--tool-arg", "content=hello", *STDIO_SERVER)
    assert proc.returncode == 0, tail(proc.stderr)
    assert_completed_qr_code(json_output(proc), era)


@pytest.mark.parametrize("era", ERAS)
def test_inspector_lists_and_calls_over_streamable_http(node_tools: NodeTools, hosted_url: str, era: str) -> None:
    listing = node_tools.inspector("--protocol-era", era, hosted_url, "--method", "tools/list")
    assert listing.returncode == 0, tail(listing.stderr)
    assert {"cctv-cam", "qr-code-generator"} <= tool_names(json_output(listing))

    call = node_tools.inspector("--protocol-era", era, hosted_url, "--method", "tools/call",
                                "--tool-name", "qr-code-generator", "--tool-arg", "content=over http")
    assert call.returncode == 0, tail(call.stderr)
    assert_completed_qr_code(json_output(call), era)


TOOL_IS_ERROR = 5
"""The Inspector CLI's exit status when the tool's result has isError: true."""


@pytest.mark.parametrize("era", ERAS)
def test_the_inspector_cannot_ask_so_a_call_to_confirm_is_refused_with_how_to_proceed(node_tools: NodeTools,
                                                                                      era: str) -> None:
    stdio = node_tools.inspector("--protocol-era", era, "-e", "FLORA_CONFIRM_ABOVE=0", "--method", "tools/call",
                                 "--tool-name", "qr-code-generator", "--tool-arg", "content=ask me", *STDIO_SERVER)
    with hosted_server(FLORA_CONFIRM_ABOVE="0") as url:
        http = node_tools.inspector("--protocol-era", era, url, "--method", "tools/call",
                                    "--tool-name", "qr-code-generator", "--tool-arg", "content=ask me")
    for proc in (stdio, http):
        assert proc.returncode == TOOL_IS_ERROR, tail(proc.stderr)
        data = json_output(proc)["result"]["structuredContent"]
        assert data["error_code"] == "confirmation_unavailable" and data["outputs"] == []
        assert "Nothing was submitted" in data["next_step"] and "FLORA_CONFIRM_ABOVE" in data["next_step"]


def test_inspector_calls_over_legacy_sse(node_tools: NodeTools) -> None:
    with hosted_server(transport="sse") as url:
        call = node_tools.inspector(url, "--method", "tools/call", "--tool-name", "qr-code-generator",
                                    "--tool-arg", "content=over sse")
    assert call.returncode == 0, tail(call.stderr)
    assert_completed_qr_code(json_output(call))


def test_inspector_reaches_a_token_protected_server_only_with_its_bearer_token(node_tools: NodeTools) -> None:
    token = "tok_clients_inspector"
    with hosted_server(FLORA_MCP_TOKENS=token) as url:
        # --stored-auth-only: fail at once instead of starting an interactive OAuth login.
        listing = node_tools.inspector("--stored-auth-only", url, "--header", f"Authorization: Bearer {token}",
                                       "--method", "tools/list")
        without = node_tools.inspector("--stored-auth-only", url, "--method", "tools/list")
        wrong = node_tools.inspector("--stored-auth-only", url, "--header", "Authorization: Bearer not-it",
                                     "--method", "tools/list")
    assert listing.returncode == 0, tail(listing.stderr)
    assert "qr-code-generator" in tool_names(json_output(listing))
    for refused in (without, wrong):
        assert refused.returncode != 0 and refused.stdout == "", refused
        assert json.loads(refused.stderr)["error"]["code"] == "auth_required", refused.stderr
