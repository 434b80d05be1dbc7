"""Cost control: prices in descriptions, caps that refuse before any POST, spend in every result and in flora_spend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from flora_mcp.core.catalog import Catalog
from flora_mcp.core.results import ToolResult
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, posts, settings_for

QR = "qr-code-generator"  # $0.01
CCTV = "cctv-cam"  # $0.05


def arguments(sandbox: Sandbox, tool: str) -> dict[str, Any]:
    if tool == CCTV:
        return {"input_image": sandbox.sample_url("street.png")}
    if tool == QR:
        return {"content": "cost test"}
    return {"text": "a b a", "find": "a", "replace": "c"}


@pytest.fixture
async def kit_factory(sandbox: Sandbox) -> AsyncIterator[Any]:
    kits: list[Toolkit] = []

    async def make(**caps: float | None) -> Toolkit:
        kit = Toolkit(settings_for(sandbox, **caps))
        await kit.__aenter__()
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        await kit.aclose()


@pytest.mark.anyio
async def test_every_description_states_the_price(toolkit: Toolkit) -> None:
    descriptions = {d["name"]: d["description"] for d in toolkit.tool_definitions()}
    assert "Costs $0.05 per run." in descriptions[CCTV]
    assert "Costs $0.01 per run." in descriptions[QR]
    assert "Costs $0.00 per run." in descriptions["find-and-replace-text"]


CAP_DECISIONS = [
    # (max per call, session budget, tool, refused by, remaining shown)
    pytest.param(0.01, None, QR, None, None, id="per-call cap equal to the price"),
    pytest.param(0.04, None, CCTV, "FLORA_MAX_COST_PER_CALL", None, id="per-call cap below the price"),
    pytest.param(None, 0.01, QR, None, None, id="budget equal to the price"),
    pytest.param(None, 0.04, CCTV, "FLORA_SESSION_BUDGET", "$0.04", id="budget below the price"),
    pytest.param(0.0, 0.0, "find-and-replace-text", None, None, id="zero caps let a free technique run"),
    pytest.param(0.0, 1.0, QR, "FLORA_MAX_COST_PER_CALL", "$1.00", id="per-call cap refuses first, budget shown"),
    pytest.param(1.0, 0.0, QR, "FLORA_SESSION_BUDGET", "$0.00", id="budget spent before the first call"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("per_call", "budget", "tool", "refused_by", "remaining"), CAP_DECISIONS)
async def test_each_cap_decision(sandbox: Sandbox, kit_factory: Any, per_call: float | None, budget: float | None,
                                 tool: str, refused_by: str | None, remaining: str | None) -> None:
    kit = await kit_factory(max_cost_per_call=per_call, session_budget=budget)
    result = await kit.call(tool, arguments(sandbox, tool))
    if refused_by is None:
        assert result.status == "completed", result.summary()
        assert posts(sandbox) == 1
        return
    assert result.is_error and result.status == "invalid" and result.error_code == "cost_cap_exceeded"
    price = kit.catalog.tools[tool].technique.run_cost
    cap = per_call if refused_by == "FLORA_MAX_COST_PER_CALL" else budget
    message = result.error_message or ""
    assert f"costs ${price:.2f}" in message and f"{refused_by} of ${cap:.2f}" in message
    if remaining is None:
        assert "remains" not in message
    else:
        assert f"{remaining} of the session budget remains" in message
    assert "Nothing was submitted" in (result.next_step or "")
    assert posts(sandbox) == 0 and sandbox.runs == []


@pytest.mark.anyio
async def test_the_budget_is_spent_across_calls_and_every_result_says_so(sandbox: Sandbox, kit_factory: Any) -> None:
    kit = await kit_factory(session_budget=0.02)
    first = await kit.call(QR, {"content": "one"})
    second = await kit.call(QR, {"content": "two"})
    third = await kit.call(QR, {"content": "three"})
    assert (first.charged_cost, first.session_spend) == (0.01, 0.01)
    assert (second.charged_cost, second.session_spend) == (0.01, 0.02)
    assert third.error_code == "cost_cap_exceeded" and third.session_spend == 0.02
    assert "costs $0.01, above FLORA_SESSION_BUDGET of $0.02. $0.00 of the session budget remains." in (
        third.error_message or "")
    assert posts(sandbox) == 2


@pytest.mark.anyio
async def test_concurrent_calls_cannot_overrun_the_budget_together(sandbox: Sandbox, kit_factory: Any) -> None:
    kit = await kit_factory(session_budget=0.10)
    sandbox.state.run_delay = 0.3
    results: list[ToolResult] = []

    async def call(index: int) -> None:
        results.append(await kit.call(CCTV, {"input_image": sandbox.sample_url("street.png")}))

    async with anyio.create_task_group() as tg:
        for index in range(4):
            tg.start_soon(call, index)
    statuses = sorted(r.status for r in results)
    assert statuses == ["completed", "completed", "invalid", "invalid"]
    assert all(r.error_code == "cost_cap_exceeded" for r in results if r.status == "invalid")
    assert posts(sandbox) == 2
    assert await kit.runs.session_spend() == pytest.approx(0.10)


@pytest.mark.anyio
async def test_a_run_charged_at_creation_is_not_counted_twice_while_it_goes_on(sandbox: Sandbox,
                                                                                kit_factory: Any) -> None:
    kit = await kit_factory(session_budget=0.10)
    sandbox.state.run_delay = 1.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(kit.call, CCTV, {"input_image": sandbox.sample_url("street.png")})
        with anyio.fail_after(5):
            while not sandbox.runs or await kit.runs.session_spend() == 0:
                await anyio.sleep(0.02)
        # The first run is charged $0.05 and still going: $0.05 of the budget remains, enough for one more.
        sandbox.state.run_delay = 0.0
        second = await kit.call(CCTV, {"input_image": sandbox.sample_url("portrait.png")})
    assert second.status == "completed", second.summary()
    assert posts(sandbox) == 2 and await kit.runs.session_spend() == pytest.approx(0.10)


@pytest.mark.anyio
async def test_a_failed_run_refunded_by_flora_gives_the_budget_back(sandbox: Sandbox, kit_factory: Any) -> None:
    kit = await kit_factory(session_budget=0.05)
    failed = await kit.call("flaky-provider", {"prompt": "please fail"})
    assert failed.status == "failed" and failed.charged_cost == 0 and failed.session_spend == 0
    assert await kit.runs.held() == 0
    again = await kit.call(CCTV, {"input_image": sandbox.sample_url("logo.png")})
    assert again.status == "completed" and again.session_spend == pytest.approx(0.05)


def _unknown_price(kit: Toolkit) -> None:
    qr = kit.catalog.tools[QR].technique
    kit.set_catalog(Catalog.from_techniques([qr.model_copy(update={"run_cost": None})]))


UNKNOWN_PRICE = [
    pytest.param({"max_cost_per_call": 1.0}, "FLORA_MAX_COST_PER_CALL", id="per-call cap"),
    pytest.param({"session_budget": 1.0}, "FLORA_SESSION_BUDGET", id="session budget"),
    pytest.param({}, None, id="no cap"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("caps", "refused_by"), UNKNOWN_PRICE)
async def test_an_unknown_price_is_refused_whenever_a_cap_is_set(
        sandbox: Sandbox, kit_factory: Any, caps: dict[str, float], refused_by: str | None) -> None:
    kit = await kit_factory(**caps)
    _unknown_price(kit)
    assert "Costs an unknown amount per run." in kit.catalog.tools[QR].definition["description"]
    result = await kit.call(QR, {"content": "price?"})
    if refused_by is None:
        assert result.status == "completed" and posts(sandbox) == 1
        return
    assert result.error_code == "cost_cap_exceeded"
    assert f"The price of QR Code Generator is unknown, and {refused_by} is set to $1.00." in (
        result.error_message or "")
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_a_refusal_reaches_an_mcp_client_as_an_error_result(sandbox: Sandbox, kit_factory: Any) -> None:
    kit = await kit_factory(max_cost_per_call=0.02)
    async with mcp_client(kit) as client:
        result = await client.call_tool(CCTV, {"input_image": sandbox.sample_url("street.png")})
    assert result.is_error is True
    data = result.structured_content or {}
    assert data["error_code"] == "cost_cap_exceeded" and data["session_spend"] == 0
    text = result.content[0].text  # type: ignore[union-attr]
    assert "$0.05" in text and "FLORA_MAX_COST_PER_CALL of $0.02" in text
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_flora_spend_tool_and_resource_list_spend_per_technique(sandbox: Sandbox, kit_factory: Any) -> None:
    kit = await kit_factory(max_cost_per_call=0.5, session_budget=2.0)
    async with mcp_client(kit) as client:
        done = await client.call_tool(QR, {"content": "a"})
        await client.call_tool(QR, {"content": "b"})
        await client.call_tool("find-and-replace-text", {"text": "x", "find": "x"})
        tool = (await client.call_tool("flora_spend", {})).structured_content or {}
        resource = await client.read_resource("flora://spend")
    assert (done.structured_content or {})["charged_cost"] == 0.01
    data = tool["data"]
    assert data["session_spend"] == pytest.approx(0.02) and tool["session_spend"] == pytest.approx(0.02)
    rows = {row["technique_name"]: row for row in data["by_technique"]}
    assert rows["QR Code Generator"]["runs"] == 2 and rows["QR Code Generator"]["charged"] == pytest.approx(0.02)
    assert rows["Find and Replace Text"]["runs"] == 1
    assert data["caps"] == {"max_cost_per_call": 0.5, "session_budget": 2.0}
    assert json.loads(resource.contents[0].text) == data  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_create_whose_outcome_is_unknown_keeps_its_price_held(sandbox: Sandbox, kit_factory: Any) -> None:
    kit = await kit_factory(session_budget=0.05, max_retries=0)
    sandbox.faults.inject(route="create_technique_run", kind="drop", when="after")
    sandbox.faults.inject(route="list_technique_runs", kind="status", status=503)  # not found by the lookup either
    lost = await kit.call(CCTV, {"input_image": sandbox.sample_url("street.png")})
    assert lost.error_code == "outcome_unknown" and posts(sandbox) == 1
    # The run may exist and be charged: its price still counts against the budget.
    assert await kit.runs.held() == pytest.approx(0.05)
    again = await kit.call(CCTV, {"input_image": sandbox.sample_url("street.png")})
    assert again.error_code == "cost_cap_exceeded" and posts(sandbox) == 1
