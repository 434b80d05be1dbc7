"""The run lifecycle's routes and keys, as FLORA sees them."""

from __future__ import annotations

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import settings_for


@pytest.mark.anyio
async def test_nested_route_sends_typed_inputs_and_one_key_as_header_and_body(sandbox: Sandbox,
                                                                              toolkit: Toolkit) -> None:
    result = await toolkit.call("find-and-replace-text", {"text": "a b", "find": "b", "replace": "c"})
    assert result.status == "completed"
    [create] = sandbox.requests_for("create_technique_run")
    assert create.path.endswith("/techniques/find-and-replace-text/runs")
    assert create.body["mode"] == "async"
    assert sorted(create.body["inputs"], key=lambda i: i["id"]) == [
        {"id": "find", "type": "text", "value": "b"},
        {"id": "replace", "type": "text", "value": "c"},
        {"id": "text", "type": "text", "value": "a b"},
    ]
    assert create.idempotency_key and create.body["idempotency_key"] == create.idempotency_key
    # Polled at the poll_url FLORA gave, which is the nested retrieve route.
    assert sandbox.requests_for("get_technique_run") and not sandbox.requests_for("get_run")


@pytest.mark.anyio
async def test_a_workspace_sends_runs_through_the_top_level_route(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, workspace_id="ws_sandbox")) as kit:
        result = await kit.call("qr-code-generator", {"content": "top level"})
        tool = kit.catalog.get("qr-code-generator")
    assert result.status == "completed" and result.outputs and result.charged_cost == 0.01
    assert not sandbox.requests_for("create_technique_run")
    [create] = sandbox.requests_for("create_run")
    assert tool is not None
    assert create.body["technique_id"] == tool.technique.technique_id
    assert create.body["workspace_id"] == "ws_sandbox"
    assert create.body["inputs"] == {"content": "top level"}
    assert create.idempotency_key
    assert sandbox.requests_for("get_run")  # the top-level poll_url


@pytest.mark.anyio
async def test_a_workspace_the_key_cannot_use_is_forbidden(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, workspace_id="ws_someone_else")) as kit:
        result = await kit.call("qr-code-generator", {"content": "x"})
    assert result.is_error and result.error_code == "forbidden"
    assert "FLORA_WORKSPACE_ID" in (result.next_step or "")
    assert not sandbox.runs


@pytest.mark.anyio
async def test_each_call_has_its_own_idempotency_key(sandbox: Sandbox, toolkit: Toolkit) -> None:
    for _ in range(3):
        await toolkit.call("qr-code-generator", {"content": "same body"})
    keys = [r.idempotency_key for r in sandbox.requests_for("create_technique_run")]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert len(sandbox.runs) == 3


@pytest.mark.anyio
async def test_a_poll_url_on_another_host_is_not_followed(sandbox: Sandbox, toolkit: Toolkit) -> None:
    # The key goes only to FLORA's own host; the retrieve route is used instead.
    from flora_mcp.api.models import Run

    technique = toolkit.catalog.get("qr-code-generator").technique  # type: ignore[union-attr]
    created = await toolkit.client.create_run(technique, {"content": "x"}, idempotency_key="k-foreign")
    run = await toolkit.client.get_run(created.run_id, technique_ref=technique.ref,
                                       poll_url="https://attacker.example/api/v1/steal")
    assert isinstance(run, Run) and run.run_id == created.run_id
    assert sandbox.requests_for("get_technique_run")[-1].path.endswith(f"/runs/{created.run_id}")
