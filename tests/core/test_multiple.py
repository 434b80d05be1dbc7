"""Inputs that allow several values: one run per value (or per combination), concurrently, with the total cost.

No sandbox technique marks an input `allow_multiple`, so each test rebuilds the catalog from a real sandbox technique
with one input so marked: the runs are real, only the schema is changed on our side.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image

from flora_mcp.core.catalog import MAX_MULTIPLE_VALUES, Catalog
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, posts, settings_for


async def multiple_kit(sandbox: Sandbox, marks: dict[str, set[str]], **settings: Any) -> Toolkit:
    """A loaded toolkit whose catalog is `marks`' techniques, with the named inputs marked allow_multiple."""
    kit = Toolkit(settings_for(sandbox, **settings))
    await kit.__aenter__()
    techniques = []
    for slug, inputs in marks.items():
        technique = kit.catalog.tools[slug].technique
        ios = [io.model_copy(update={"allow_multiple": io.id in inputs}) for io in technique.inputs or []]
        techniques.append(technique.model_copy(update={"inputs": ios}))
    kit.set_catalog(Catalog.from_techniques(techniques))
    return kit


@pytest.fixture
async def qr_kit(sandbox: Sandbox) -> AsyncIterator[Toolkit]:
    kit = await multiple_kit(sandbox, {"qr-code-generator": {"content"}, "add-text-to-image": {"input_image", "text"},
                                       "flaky-provider": {"prompt"}})
    try:
        yield kit
    finally:
        await kit.aclose()


async def qr_payloads(urls: list[str]) -> list[str]:
    async with httpx.AsyncClient() as http:
        payloads = []
        for url in urls:
            [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO((await http.get(url)).content)))
            payloads.append(code.text)
    return payloads


@pytest.mark.anyio
async def test_a_multiple_input_is_an_array_in_the_schema(qr_kit: Toolkit) -> None:
    prop = qr_kit.catalog.tools["qr-code-generator"].input_schema["properties"]["content"]
    assert prop["type"] == "array" and prop["items"]["type"] == "string"
    assert prop["minItems"] == 1 and prop["maxItems"] == MAX_MULTIPLE_VALUES
    assert "runs once per value" in prop["description"]


@pytest.mark.anyio
async def test_a_list_makes_one_concurrent_run_per_value_with_every_output_and_the_total(
        sandbox: Sandbox, qr_kit: Toolkit) -> None:
    sandbox.state.run_delay = 0.6
    result = await qr_kit.call("qr-code-generator", {"content": ["alpha", "beta", "gamma"]})
    assert result.status == "completed", result.summary()
    # Side by side, not one after another: every run was created before any of them completed.
    assert max(run.created_at for run in sandbox.runs) < min(run.completed_at or 0 for run in sandbox.runs)
    assert posts(sandbox) == 3 and len({r.idempotency_key for r in sandbox.requests_for("create_technique_run")}) == 3
    assert [r.status for r in result.runs] == ["completed"] * 3
    assert len({r.run_id for r in result.runs}) == 3
    assert await qr_payloads([o.url for o in result.outputs]) == ["alpha", "beta", "gamma"]
    assert result.charged_cost == pytest.approx(0.03) and result.session_spend == pytest.approx(0.03)
    assert "Charged: $0.03" in result.summary()


@pytest.mark.anyio
async def test_a_lone_value_for_a_multiple_input_is_one_run(sandbox: Sandbox, qr_kit: Toolkit) -> None:
    result = await qr_kit.call("qr-code-generator", {"content": "solo"})
    assert result.status == "completed" and result.runs == [] and result.run_id
    assert posts(sandbox) == 1 and result.charged_cost == 0.01


@pytest.mark.anyio
async def test_two_multiple_inputs_run_every_combination(sandbox: Sandbox, qr_kit: Toolkit) -> None:
    images = [sandbox.sample_url("street.png"), sandbox.sample_url("logo.png")]
    result = await qr_kit.call("add-text-to-image", {"input_image": images, "text": ["one", "two"]})
    assert result.status == "completed", result.summary()
    assert len(result.outputs) == 4 and result.charged_cost == pytest.approx(0.04)
    sent = {tuple((i["id"], i["value"].rsplit("/", 1)[-1]) for i in r.body["inputs"])
            for r in sandbox.requests_for("create_technique_run")}
    assert sent == {(("input_image", image), ("text", text))
                    for image in ("street.png", "logo.png") for text in ("one", "two")}


CAPS = [
    pytest.param({"max_cost_per_call": 0.02}, ["a", "b", "c"], "costs $0.03, above FLORA_MAX_COST_PER_CALL of $0.02",
                 id="per-call cap on the total"),
    pytest.param({"session_budget": 0.025}, ["a", "b", "c"], "costs $0.03, above FLORA_SESSION_BUDGET of $0.025",
                 id="budget on the total"),
    pytest.param({"session_budget": 0.025}, ["a", "b"], None, id="budget enough for two"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("caps", "values", "refusal"), CAPS)
async def test_caps_apply_to_the_total_before_anything_is_submitted(
        sandbox: Sandbox, caps: dict[str, float], values: list[str], refusal: str | None) -> None:
    kit = await multiple_kit(sandbox, {"qr-code-generator": {"content"}}, **caps)
    try:
        result = await kit.call("qr-code-generator", {"content": values})
    finally:
        await kit.aclose()
    if refusal is None:
        assert result.status == "completed" and posts(sandbox) == len(values)
        return
    assert result.error_code == "cost_cap_exceeded" and refusal in (result.error_message or "")
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_more_runs_than_allowed_are_refused_before_any_post(sandbox: Sandbox, qr_kit: Toolkit) -> None:
    images = [sandbox.sample_url("street.png")] * 4
    too_many = await qr_kit.call("add-text-to-image", {"input_image": images, "text": ["a", "b", "c"]})
    assert too_many.status == "invalid" and "12 runs requested; at most 10" in (too_many.error_message or "")
    too_long = await qr_kit.call("qr-code-generator", {"content": [str(i) for i in range(11)]})
    empty = await qr_kit.call("qr-code-generator", {"content": []})
    assert too_long.status == "invalid" and empty.status == "invalid"
    assert [f.field for f in empty.error_fields] == ["content"]
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_one_failed_value_fails_the_call_but_keeps_the_others_outputs(sandbox: Sandbox,
                                                                           qr_kit: Toolkit) -> None:
    result = await qr_kit.call("flaky-provider", {"prompt": ["a card", "please fail", "another card"]})
    assert result.status == "failed" and result.is_error and result.error_code == "provider_error"
    assert [r.status for r in result.runs] == ["completed", "failed", "completed"]
    assert len(result.outputs) == 2
    assert result.charged_cost == pytest.approx(0.10)  # the failed run was refunded
    assert await qr_kit.runs.session_spend() == pytest.approx(0.10) and await qr_kit.runs.held() == 0


@pytest.mark.anyio
async def test_fan_out_through_mcp_reports_rising_progress_and_all_runs(sandbox: Sandbox, qr_kit: Toolkit) -> None:
    sandbox.state.run_delay = 0.3
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with mcp_client(qr_kit) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "qr-code-generator")
        assert tool.input_schema["properties"]["content"]["type"] == "array"
        result = await client.call_tool("qr-code-generator", {"content": ["x", "y"]}, progress_callback=on_progress)
    data = result.structured_content or {}
    assert result.is_error is False and data["status"] == "completed"
    assert len(data["outputs"]) == 2 and len(data["runs"]) == 2 and data["charged_cost"] == pytest.approx(0.02)
    assert seen == sorted(seen) and len(set(seen)) == len(seen) and seen[-1] == 100.0
