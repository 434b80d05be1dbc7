"""The idempotency key on the wire: in the `Idempotency-Key` header and in the body's `idempotency_key`, each checked
on its own, the same on every attempt of one call, and the key the journal holds.

FLORA's pages name both places; a server that reads only one of them must still see the key, so flora-mcp sends
both. The sandbox's request log records the header alone (`RecordedRequest.idempotency_key`) and the body as sent,
so a client that drops either one fails here.
"""

from __future__ import annotations

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import RecordedRequest, Sandbox
from tests.support import settings_for

TECHNIQUE = "qr-code-generator"


async def one_call(kit: Toolkit, sandbox: Sandbox, route: str = "create_technique_run") -> tuple[str, RecordedRequest]:
    """Make one call; the idempotency key the journal recorded for it, and its first create request."""
    result = await kit.call(TECHNIQUE, {"content": "once"})
    assert result.status == "completed", result.summary()
    [entry] = await kit.runs.recent()
    assert entry.run_id == result.run_id
    return entry.idempotency_key, sandbox.requests_for(route)[0]


@pytest.mark.anyio
async def test_the_key_is_in_the_idempotency_key_header(sandbox: Sandbox, toolkit: Toolkit) -> None:
    key, create = await one_call(toolkit, sandbox)
    assert key.startswith("flora-mcp-")
    assert create.idempotency_key == key


@pytest.mark.anyio
async def test_the_key_is_in_the_body_field(sandbox: Sandbox, toolkit: Toolkit) -> None:
    key, create = await one_call(toolkit, sandbox)
    assert isinstance(create.body, dict)
    assert create.body["idempotency_key"] == key


@pytest.mark.anyio
async def test_the_top_level_route_carries_the_key_in_header_and_body(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, workspace_id="ws_sandbox")) as kit:
        key, create = await one_call(kit, sandbox, route="create_run")
    assert create.idempotency_key == key
    assert isinstance(create.body, dict) and create.body["idempotency_key"] == key


@pytest.mark.anyio
async def test_every_attempt_of_one_call_sends_the_same_key_in_both_places(sandbox: Sandbox) -> None:
    sandbox.faults.inject("create_technique_run", "status", status=503, count=2, retry_after=0)
    async with Toolkit(settings_for(sandbox)) as kit:
        result = await kit.call(TECHNIQUE, {"content": "retried"})
        [entry] = await kit.runs.recent()
    assert result.status == "completed", result.summary()
    attempts = sandbox.requests_for("create_technique_run")
    assert [a.status for a in attempts] == [503, 503, 200]
    assert [a.idempotency_key for a in attempts] == [entry.idempotency_key] * 3
    assert [a.body["idempotency_key"] for a in attempts] == [entry.idempotency_key] * 3
    assert len(sandbox.runs) == 1 and sandbox.runs[0].idempotency_key == entry.idempotency_key
