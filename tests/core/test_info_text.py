"""flora_list_runs, flora_spend and flora_search_techniques say in their text what their structured content carries.

Many clients give the model the text alone, so "run None completed." told it nothing. Each run listed appears with
its run id (or the call key of a row without one), technique, tool, status, cost, time, every output URL and its
error; the spend with the session's, the held and the all-time totals, each technique's runs and spend, and the caps.
"""

from __future__ import annotations

import mcp.types as types
import pytest

from flora_mcp.core.results import format_usd
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, settings_for


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.anyio
async def test_the_list_of_runs_names_every_fact_of_every_run(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, max_cost_per_call=1.0, session_budget=2.5)) as kit:
        done = await kit.call("split-text", {"text": "one\ntwo"})
        sandbox.faults.inject("get_technique_run", "run_failed", message="the provider went away")
        failed = await kit.call("qr-code-generator", {"content": "fails"})
        async with mcp_client(kit) as client:
            listed = await client.call_tool("flora_list_runs", {})
            spend = await client.call_tool("flora_spend", {})
    assert done.status == "completed" and failed.status == "failed"
    rows = (listed.structured_content or {})["data"]["runs"]
    text = text_of(listed)
    assert "None" not in text and len(rows) == 2
    assert text.splitlines()[0] == "flora_list_runs: 2 run(s), newest first."
    for row in rows:
        line = next(line for line in text.splitlines() if row["run_id"] in line)
        assert row["technique_name"] in line and row["tool"] in line and row["status"] in line
        assert format_usd(row["charged_cost"]) in line and "created 20" in line
        for output in row["outputs"]:
            assert f"output {output['output_id']} ({output['type']}): {output['url']}" in text
    assert len([o for row in rows for o in row["outputs"]]) == 2
    assert "error provider_error: the provider went away" in text

    data = (spend.structured_content or {})["data"]
    words = text_of(spend)
    assert "None" not in words
    assert f"this session {format_usd(data['session_spend'])}" in words
    assert f"all time {format_usd(data['total_charged'])}" in words
    for row in data["by_technique"]:
        assert f"- {row['technique_name']}: {row['runs']} run(s), {format_usd(row['charged'])}" in words
    assert len(data["by_technique"]) == 2
    assert "max_cost_per_call $1.00, session_budget $2.50" in words


@pytest.mark.anyio
async def test_an_empty_journal_and_a_run_without_its_id_say_so(sandbox: Sandbox, toolkit: Toolkit) -> None:
    empty = await toolkit.call("flora_list_runs", {})
    assert empty.summary().splitlines()[0] == "flora_list_runs: no runs recorded."
    sandbox.faults.inject("create_technique_run", "status", status=503, count=10)
    lost = await toolkit.call("qr-code-generator", {"content": "no answer"})
    assert lost.error_code == "outcome_unknown"
    listed = await toolkit.call("flora_list_runs", {})
    key = listed.data["runs"][0]["idempotency_key"] if listed.data else None
    assert key and f"no run id yet (call {key})" in listed.summary()
    assert "None" not in listed.summary()


@pytest.mark.anyio
async def test_search_names_each_technique_found(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, tools_mode="compact")) as kit:
        found = await kit.call("flora_search_techniques", {"query": "qr"})
        described = await kit.call("flora_describe_technique", {"technique": "qr-code-generator"})
    assert found.data is not None and found.data["count"] >= 1
    text = found.summary()
    assert "None" not in text and all(technique in text for technique in found.data["techniques"])
    assert '"inputSchema"' in described.summary() and "run None" not in described.summary()
