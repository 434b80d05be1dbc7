"""The person confirms spending, through the SDK's own client in both eras: form elicitation on 2025-11-25, a retried
request with sealed state on 2026-07-28; accepted, declined, cancelled, tampered, replayed; in memory and over stdio,
streamable HTTP (stateful and stateless) and SSE.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp.types as types
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.sse import sse_client
from pydantic import SecretStr

from flora_mcp.core.catalog import Catalog
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from flora_mcp.server.confirm import CONFIRM_INPUT
from flora_mcp.server.handlers import create_server
from tests.hosted.hosted_support import hosted
from tests.support import mcp_client, posts, sandbox_env, settings_for

INVALID_PARAMS = -32602
YES = types.ElicitResult(action="accept", content={"confirm": True})
NO = types.ElicitResult(action="decline")
DISMISSED = types.ElicitResult(action="cancel")


class Person:
    """An elicitation callback: answers as told, and keeps what it was shown."""

    def __init__(self, answer: types.ElicitResult) -> None:
        self.answer = answer
        self.shown: list[types.ElicitRequestFormParams] = []

    async def __call__(self, ctx: Any, params: Any) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams), params
        self.shown.append(params)
        return self.answer


def data(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)


@pytest.fixture
async def kit(sandbox: Sandbox) -> AsyncIterator[Toolkit]:
    async with Toolkit(settings_for(sandbox, confirm_above=0)) as toolkit:
        yield toolkit


# Both eras, in memory -------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_accepted_the_call_runs_once_after_the_person_saw_the_price(sandbox: Sandbox, kit: Toolkit,
                                                                          mode: str) -> None:
    person = Person(YES)
    async with mcp_client(kit, mode=mode, elicitation_callback=person) as client:
        result = await client.call_tool("qr-code-generator", {"content": "confirmed"})
    assert data(result)["status"] == "completed" and posts(sandbox) == 1
    [shown] = person.shown
    assert "QR Code Generator (qr-code-generator)" in shown.message and "It costs $0.01" in shown.message
    assert "content=confirmed" in shown.message and "spent $0.00 so far" in shown.message
    field = shown.requested_schema["properties"]["confirm"]
    assert field["type"] == "boolean" and field["default"] is False
    assert field["title"] == "Run QR Code Generator for $0.01?"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("answer", "code"), [
    pytest.param(NO, "confirmation_declined", id="declined"),
    pytest.param(DISMISSED, "confirmation_cancelled", id="cancelled"),
    pytest.param(types.ElicitResult(action="accept", content={"confirm": False}), "confirmation_declined",
                 id="accepted-the-form-with-no"),
])
async def test_without_a_yes_the_result_says_nothing_was_spent(sandbox: Sandbox, kit: Toolkit, mode: str,
                                                               answer: types.ElicitResult, code: str) -> None:
    async with mcp_client(kit, mode=mode, elicitation_callback=Person(answer)) as client:
        result = await client.call_tool("qr-code-generator", {"content": "declined"})
    assert result.is_error is False  # the person's choice, not a failure
    body = data(result)
    assert (body["status"], body["error_code"], body["charged_cost"]) == ("declined", code, 0.0)
    text = result.content[0].text  # type: ignore[union-attr]
    assert "Nothing was sent to FLORA and nothing was charged" in text
    assert posts(sandbox) == 0


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_that_cannot_ask_gets_a_refusal_that_says_how_to_proceed(sandbox: Sandbox, kit: Toolkit,
                                                                                 mode: str) -> None:
    async with mcp_client(kit, mode=mode) as client:  # no elicitation callback: no elicitation declared
        result = await client.call_tool("qr-code-generator", {"content": "nobody to ask"})
    assert result.is_error is True
    body = data(result)
    assert body["error_code"] == "confirmation_unavailable" and "cannot ask them" in body["error_message"]
    assert "FLORA_CONFIRM_ABOVE" in body["next_step"] and "elicitation" in body["next_step"]
    assert posts(sandbox) == 0


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_below_the_threshold_nobody_is_asked(sandbox: Sandbox, mode: str) -> None:
    person = Person(NO)
    async with Toolkit(settings_for(sandbox, confirm_above=0.01)) as toolkit, \
            mcp_client(toolkit, mode=mode, elicitation_callback=person) as client:
        assert data(await client.call_tool("qr-code-generator", {"content": "cheap"}))["status"] == "completed"
        assert data(await client.call_tool("cctv-cam", {"input_image": sandbox.sample_url("street.png")})
                    )["status"] == "declined"  # $0.05 is above it
    assert [p.requested_schema["properties"]["confirm"]["title"] for p in person.shown] == [
        "Run CCTV Cam for $0.05?"]


# 2026-07-28: the retried request ---------------------------------------------------------------------------------


async def first_round(client: Client, arguments: dict[str, Any]) -> types.InputRequiredResult:
    first = await client.session.call_tool("qr-code-generator", arguments, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult), first
    return first


async def retry(client: Client, arguments: dict[str, Any], state: str | None,
                answer: types.ElicitResult = YES) -> types.CallToolResult | types.InputRequiredResult:
    return await client.session.call_tool("qr-code-generator", arguments, allow_input_required=True,
                                          input_responses={CONFIRM_INPUT: answer}, request_state=state)


@pytest.mark.anyio
async def test_the_state_on_the_wire_is_sealed_and_the_form_is_the_same_as_in_2025(sandbox: Sandbox,
                                                                                   kit: Toolkit) -> None:
    async with mcp_client(kit, mode="auto", elicitation_callback=Person(YES)) as client:
        first = await first_round(client, {"content": "sealed"})
        assert first.request_state is not None and first.request_state.startswith("v1.")
        for plaintext in ("fingerprint", "nonce", kit.account, "qr-code-generator"):
            assert plaintext not in first.request_state
        request = first.input_requests[CONFIRM_INPUT]
        assert isinstance(request, types.ElicitRequest) and isinstance(request.params, types.ElicitRequestFormParams)
        assert "It costs $0.01" in request.params.message
        assert posts(sandbox) == 0  # asking sent nothing
        done = await retry(client, {"content": "sealed"}, first.request_state)
        assert isinstance(done, types.CallToolResult) and data(done)["status"] == "completed"
    assert posts(sandbox) == 1


@pytest.mark.anyio
async def test_a_replayed_confirmation_is_refused_and_runs_nothing_more(sandbox: Sandbox, kit: Toolkit) -> None:
    async with mcp_client(kit, mode="auto", elicitation_callback=Person(YES)) as client:
        first = await first_round(client, {"content": "once"})
        done = await retry(client, {"content": "once"}, first.request_state)
        assert isinstance(done, types.CallToolResult) and data(done)["status"] == "completed"
        with pytest.raises(MCPError) as replayed:
            await retry(client, {"content": "once"}, first.request_state)
        assert replayed.value.error.code == INVALID_PARAMS and "already used" in replayed.value.error.message
        # A declined answer is used up too: it cannot be turned into a yes later.
        second = await first_round(client, {"content": "once"})
        declined = await retry(client, {"content": "once"}, second.request_state, NO)
        assert isinstance(declined, types.CallToolResult) and data(declined)["status"] == "declined"
        with pytest.raises(MCPError):
            await retry(client, {"content": "once"}, second.request_state, YES)
    assert posts(sandbox) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("change", ["tampered", "other-arguments", "truncated"])
async def test_an_altered_confirmation_is_refused(sandbox: Sandbox, kit: Toolkit, change: str) -> None:
    async with mcp_client(kit, mode="auto", elicitation_callback=Person(YES)) as client:
        first = await first_round(client, {"content": "original"})
        state = first.request_state or ""
        arguments = {"content": "original"}
        if change == "tampered":
            state = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
        elif change == "other-arguments":
            arguments = {"content": "something dearer"}
        else:
            state = state[: len(state) // 2]
        with pytest.raises(MCPError) as refused:
            await retry(client, arguments, state)
        assert refused.value.error.code == INVALID_PARAMS
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_an_answer_without_the_state_it_answers_is_asked_again(sandbox: Sandbox, kit: Toolkit) -> None:
    async with mcp_client(kit, mode="auto", elicitation_callback=Person(YES)) as client:
        again = await retry(client, {"content": "forged"}, None)
        assert isinstance(again, types.InputRequiredResult)
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_a_price_change_between_the_rounds_is_asked_again(sandbox: Sandbox, kit: Toolkit) -> None:
    async with mcp_client(kit, mode="auto", elicitation_callback=Person(YES)) as client:
        first = await first_round(client, {"content": "repriced"})
        techniques = [t.technique for t in kit.catalog.tools.values()]
        dearer = [t.model_copy(update={"run_cost": 0.5}) if t.slug == "qr-code-generator" else t for t in techniques]
        kit.set_catalog(Catalog.from_techniques(dearer))
        again = await retry(client, {"content": "repriced"}, first.request_state)
        assert isinstance(again, types.InputRequiredResult)  # a yes to $0.01 is not a yes to $0.50
        request = again.input_requests[CONFIRM_INPUT]
        assert isinstance(request, types.ElicitRequest) and "It costs $0.50" in request.params.message
    assert posts(sandbox) == 0


@pytest.mark.anyio
async def test_a_confirmation_for_one_account_does_not_confirm_for_another(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, confirm_above=0)) as alice, \
            Toolkit(settings_for(sandbox, confirm_above=0, base_url=sandbox.base_url + "/")) as other:
        other.account = "another-account"
        current = {"kit": alice}

        async def resolve(ctx: object) -> Toolkit:
            return current["kit"]

        async with Client(create_server(resolve), elicitation_callback=Person(YES)) as client:
            first = await first_round(client, {"content": "mine"})
            current["kit"] = other
            with pytest.raises(MCPError) as refused:
                await retry(client, {"content": "mine"}, first.request_state)
            assert "another FLORA account" in refused.value.error.message
    assert posts(sandbox) == 0


# Real transports ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def served(transport: str, box: Sandbox, mode: str, person: Person | None,
                 **env: str) -> AsyncIterator[Client]:
    options: dict[str, Any] = {"mode": mode}
    if person is not None:
        options["elicitation_callback"] = person
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=["-m", "flora_mcp"], env=sandbox_env(
            box, FLORA_CONFIRM_ABOVE="0", FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING", **env))
        async with Client(params, **options) as client:
            yield client
        return
    settings = settings_for(box, confirm_above=0, **{k.removeprefix("FLORA_").lower(): SecretStr(v)
                                                     for k, v in env.items()})
    async with hosted(settings, stateless=transport == "http-stateless") as server:
        target: Any = sse_client(f"{server.url}/sse") if transport == "sse" else f"{server.url}/mcp"
        async with Client(target, **options) as client:
            yield client


# On stateless HTTP a 2025-11-25 session has no channel back for `elicitation/create`: it cannot ask.
CAN_ASK = {("stdio", "legacy"), ("stdio", "auto"), ("http", "legacy"), ("http", "auto"), ("http-stateless", "auto"),
           ("sse", "legacy"), ("sse", "auto")}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("transport", ["stdio", "http", "http-stateless", "sse"])
async def test_accept_decline_and_cancel_over_each_transport(sandbox: Sandbox, transport: str, mode: str) -> None:
    expected = []
    for answer, status in ((YES, "completed"), (NO, "declined"), (DISMISSED, "declined")):
        person = Person(answer)
        async with served(transport, sandbox, mode, person) as client:
            result = await client.call_tool("qr-code-generator", {"content": f"{transport} {mode}"})
        if (transport, mode) in CAN_ASK:
            assert data(result)["status"] == status and len(person.shown) == 1
            expected.append(status)
        else:
            assert data(result)["error_code"] == "confirmation_unavailable" and person.shown == []
    assert posts(sandbox) == expected.count("completed")


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["stdio", "http-stateless"])
async def test_tampered_and_replayed_confirmations_are_refused_over_the_wire(sandbox: Sandbox,
                                                                            transport: str) -> None:
    async with served(transport, sandbox, "auto", Person(YES)) as client:
        first = await first_round(client, {"content": "wire"})
        state = first.request_state or ""
        with pytest.raises(MCPError) as tampered:
            await retry(client, {"content": "wire"}, state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB"))
        assert tampered.value.error.code == INVALID_PARAMS and posts(sandbox) == 0
        done = await retry(client, {"content": "wire"}, state)
        assert isinstance(done, types.CallToolResult) and data(done)["status"] == "completed"
        with pytest.raises(MCPError) as replayed:
            await retry(client, {"content": "wire"}, state)
        assert replayed.value.error.code == INVALID_PARAMS
    assert posts(sandbox) == 1


@pytest.mark.anyio
async def test_replicas_sharing_state_keys_accept_each_others_confirmations(sandbox: Sandbox) -> None:
    shared, other = secrets.token_hex(32), secrets.token_hex(32)
    async with served("http-stateless", sandbox, "auto", Person(YES), FLORA_STATE_KEYS=shared) as one:
        first = await first_round(one, {"content": "replica"})
        second = await first_round(one, {"content": "replica"})
    async with served("http-stateless", sandbox, "auto", Person(YES), FLORA_STATE_KEYS=f"{other},{shared}") as two:
        done = await retry(two, {"content": "replica"}, first.request_state)  # an old key still opens it
        assert isinstance(done, types.CallToolResult) and data(done)["status"] == "completed"
    async with served("http-stateless", sandbox, "auto", Person(YES), FLORA_STATE_KEYS=other) as three:
        with pytest.raises(MCPError) as refused:
            await retry(three, {"content": "replica"}, second.request_state)
        assert refused.value.error.code == INVALID_PARAMS
    async with served("http-stateless", sandbox, "auto", Person(YES)) as ephemeral:
        with pytest.raises(MCPError):
            await retry(ephemeral, {"content": "replica"}, second.request_state)
    assert posts(sandbox) == 1
