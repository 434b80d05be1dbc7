"""The TypeScript SDK's Client (clients/sdk_client.mjs) against flora-mcp: progress keeps a long call alive.

A client's request timeout restarts on each progress notification only with `resetTimeoutOnProgress`; flora-mcp
sends progress at least every HEARTBEAT seconds while it waits. So a call whose timeout is a little longer than the
heartbeat, on a run longer than the timeout, must still succeed; the same call without the reset must time out.
"""

from __future__ import annotations

from typing import Any

from flora_mcp.core.runs import HEARTBEAT
from tests.clients.clients_support import SANDBOX_KEY, NodeTools, flora_mcp_command, json_output, sandbox_process

REQUEST_TIMEOUT_MS = int((HEARTBEAT + 1.5) * 1000)
"""Longer than the heartbeat, so each progress notification arrives before the timeout fires, even on a busy machine."""
RUN_DELAY = HEARTBEAT + 2.5
"""The sandbox's run delay: every run takes longer than the request timeout."""
MCP_REQUEST_TIMEOUT = -32001


def gaps_ms(call: dict[str, Any]) -> list[int]:
    """Milliseconds between the call's start, each progress notification, and its result."""
    marks = [0, *(p["at_ms"] for p in call["progress"]), call["elapsed_ms"]]
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def test_progress_resets_keep_a_call_alive_past_its_timeout(node_tools: NodeTools) -> None:
    with sandbox_process(delay=RUN_DELAY) as base_url:
        proc = node_tools.sdk_client(
            "--env", f"FLORA_BASE_URL={base_url}", "--env", f"FLORA_API_KEY={SANDBOX_KEY}",
            "--env", "FLORA_JOURNAL=:memory:", "--env", "FLORA_CATALOG_CACHE=off", "--env", "FLORA_POLL_INTERVAL=0.1",
            "--tool", "qr-code-generator", "--arg", "content=kept alive by progress",
            "--timeout", str(REQUEST_TIMEOUT_MS), "--reset-timeout-on-progress", "--control",
            "--", *flora_mcp_command())
    report = json_output(proc)
    assert proc.returncode == 0, (report, proc.stderr[-3000:])
    assert {"cctv-cam", "qr-code-generator", "flora_get_run"} <= set(report["tools"])

    call = report["call"]
    assert call["ok"] is True
    data = call["result"]["structuredContent"]
    assert data["status"] == "completed" and data["outputs"][0]["url"].startswith("http://127.0.0.1:"), data
    assert call["elapsed_ms"] > REQUEST_TIMEOUT_MS, "the run was not longer than the timeout: nothing was proven"
    assert len(call["progress"]) >= 2, call["progress"]
    values = [p["progress"] for p in call["progress"]]
    # Strictly rising, as MCP requires. The last one (100) may be missing: the TypeScript SDK handles notifications
    # a microtask after the message that follows them, so a progress read together with the result comes too late.
    assert values == sorted(set(values)), values
    assert max(gaps_ms(call)) < REQUEST_TIMEOUT_MS, gaps_ms(call)

    # The same call, at the same time, without resetting the timeout on progress: the SDK gives up.
    control = report["control"]
    assert control["ok"] is False and control["error"]["code"] == MCP_REQUEST_TIMEOUT, control
    assert control["elapsed_ms"] >= REQUEST_TIMEOUT_MS


def test_sdk_client_lists_and_calls_with_progress_over_streamable_http(node_tools: NodeTools, hosted_url: str) -> None:
    proc = node_tools.sdk_client("--url", hosted_url, "--tool", "qr-code-generator", "--arg", "content=sdk over http",
                                 "--reset-timeout-on-progress", "--timeout", "30000")
    report = json_output(proc)
    assert proc.returncode == 0, (report, proc.stderr[-3000:])
    assert report["server"]["name"] == "flora-mcp"
    assert {"cctv-cam", "qr-code-generator"} <= set(report["tools"])
    call = report["call"]
    assert call["result"]["structuredContent"]["status"] == "completed", call
    assert call["progress"] and call["progress"][0]["progress"] == 0, call["progress"]
