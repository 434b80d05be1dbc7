"""The `mcp` SDK's own `Client` against a real `flora-mcp` process, in `legacy` (2025-11-25: handshake, form
elicitation while the call waits) and `auto` (2026-07-28: stateless, `InputRequiredResult` and a retried call) modes,
over stdio and streamable HTTP (and, for 2026, stateless HTTP): the person's confirmation accepted, declined, cancelled,
tampered with and replayed.

On 2025-11-25 there is no state to tamper with or replay: the question is the server's own request inside the call.
What stands for it there: an answer outside the form (`confirm: "yes"`) sends nothing, and a yes answers one call
only: the next one is asked again. The in-process and SSE variants are in tests/server/test_confirm.py.
"""

from __future__ import annotations

from typing import Any

import mcp.types as types
import pytest
from mcp import Client, MCPError

from flora_mcp.sandbox import Sandbox
from flora_mcp.server.confirm import CONFIRM_INPUT
from tests.clients.flora_process import ERA, STATELESS, TRANSPORTS, flora_mcp
from tests.support import posts

pytestmark = pytest.mark.anyio

INVALID_PARAMS = -32602
YES = types.ElicitResult(action="accept", content={"confirm": True})
NO = types.ElicitResult(action="decline")
DISMISSED = types.ElicitResult(action="cancel")
OFF_FORM = types.ElicitResult(action="accept", content={"confirm": "yes"})


class Person:
    """An elicitation callback that gives the answer it is set to, and keeps what it was shown."""

    def __init__(self, answer: types.ElicitResult = YES) -> None:
        self.answer = answer
        self.shown: list[str] = []

    async def __call__(self, ctx: Any, params: Any) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams), params
        self.shown.append(params.message)
        return self.answer


def outcome(result: types.CallToolResult) -> tuple[Any, ...]:
    data = result.structured_content or {}
    return data.get("status"), data.get("error_code"), data.get("charged_cost")


# A 2026 request carries its question in the answer, so it needs no session: stateless HTTP too.
CASES = [(transport, mode) for transport in TRANSPORTS for mode in ("legacy", "auto")] + [(STATELESS, "auto")]


@pytest.mark.parametrize(("transport", "mode"), CASES, ids=[f"{t}-{m}" for t, m in CASES])
async def test_accepted_declined_cancelled_and_off_form_answers(sandbox: Sandbox, transport: str, mode: str) -> None:
    person = Person()
    async with flora_mcp(sandbox, transport, FLORA_CONFIRM_ABOVE="0") as server, \
            Client(server.target, mode=mode, elicitation_callback=person) as client:  # type: ignore[arg-type]
        assert client.protocol_version == ERA[mode]
        assert len(server.pids()) == 1  # a flora-mcp process of its own, not a server in this event loop
        seen, results = [], []
        for answer in (YES, NO, DISMISSED, OFF_FORM, YES):
            person.answer = answer
            results.append(await client.call_tool("qr-code-generator", {"content": f"{transport} {mode}"}))
            seen.append(outcome(results[-1]))
    assert seen == [("completed", None, 0.01), ("declined", "confirmation_declined", 0.0),
                    ("declined", "confirmation_cancelled", 0.0), ("declined", "confirmation_declined", 0.0),
                    ("completed", None, 0.01)]
    assert len(person.shown) == 5  # each call asked, the last one too: the first yes did not carry over
    assert all("It costs $0.01" in message for message in person.shown)
    assert "spent $0.01 so far" in person.shown[-1]
    assert posts(sandbox) == 2
    # What the run gave back: its URL in the text, a resource_link to it, a small preview marked in _meta.
    text, link, preview = results[0].content
    [output] = (results[0].structured_content or {})["outputs"]
    assert isinstance(text, types.TextContent) and output["url"] in text.text
    assert isinstance(link, types.ResourceLink) and (link.uri, link.mime_type) == (output["url"], "image/png")
    assert isinstance(preview, types.ImageContent) and preview.meta == {"output_id": "qr_code", "preview": True}
    assert link.annotations == types.Annotations(audience=["user", "assistant"], priority=1.0)
    assert preview.annotations == types.Annotations(audience=["user"], priority=0.5)  # for the person, not the model


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_without_a_way_to_ask_the_call_is_refused_and_says_how_to_proceed(sandbox: Sandbox,
                                                                               transport: str) -> None:
    async with flora_mcp(sandbox, transport, FLORA_CONFIRM_ABOVE="0") as server:
        for mode in ("legacy", "auto"):
            async with Client(server.target, mode=mode) as client:  # type: ignore[arg-type]
                result = await client.call_tool("qr-code-generator", {"content": "nobody to ask"})
            assert result.is_error is True and outcome(result)[1] == "confirmation_unavailable", mode
            assert "FLORA_CONFIRM_ABOVE" in (result.structured_content or {})["next_step"]
    assert posts(sandbox) == 0


async def test_a_2025_session_on_stateless_http_is_refused_although_it_could_answer(sandbox: Sandbox) -> None:
    """No session, no channel back for `elicitation/create`: declaring elicitation is not enough there."""
    person = Person()
    async with flora_mcp(sandbox, STATELESS, FLORA_CONFIRM_ABOVE="0") as server, \
            Client(server.target, mode="legacy", elicitation_callback=person) as client:  # type: ignore[arg-type]
        result = await client.call_tool("qr-code-generator", {"content": "no way back"})
    assert outcome(result)[1] == "confirmation_unavailable" and person.shown == []
    assert posts(sandbox) == 0


async def first_round(client: Client, arguments: dict[str, Any]) -> types.InputRequiredResult:
    first = await client.session.call_tool("qr-code-generator", arguments, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult), first
    return first


async def retry(client: Client, arguments: dict[str, Any], state: str | None,
                answer: types.ElicitResult = YES) -> types.CallToolResult | types.InputRequiredResult:
    return await client.session.call_tool("qr-code-generator", arguments, allow_input_required=True,
                                          input_responses={CONFIRM_INPUT: answer}, request_state=state)


async def refused(client: Client, arguments: dict[str, Any], state: str | None) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await retry(client, arguments, state)
    assert caught.value.error.code == INVALID_PARAMS, caught.value.error
    return caught.value


@pytest.mark.parametrize("transport", [*TRANSPORTS, STATELESS])
async def test_a_2026_confirmation_tampered_with_or_replayed_is_refused(sandbox: Sandbox, transport: str) -> None:
    arguments = {"content": f"sealed over {transport}"}
    async with flora_mcp(sandbox, transport, FLORA_CONFIRM_ABOVE="0") as server, \
            Client(server.target, mode="auto", elicitation_callback=Person()) as client:  # type: ignore[arg-type]
        assert client.protocol_version == "2026-07-28"
        first = await first_round(client, arguments)
        state = first.request_state or ""
        assert state.startswith("v1.") and "qr-code-generator" not in state  # sealed, not readable
        await refused(client, arguments, state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB"))
        await refused(client, arguments, state[: len(state) // 2])
        await refused(client, {"content": "something else"}, state)  # bound to the arguments it was asked for
        assert posts(sandbox) == 0
        done = await retry(client, arguments, state)
        assert isinstance(done, types.CallToolResult) and outcome(done)[0] == "completed"
        assert "already used" in (await refused(client, arguments, state)).error.message  # replayed
        again = await retry(client, arguments, None)  # an answer without its state is no answer: asked again
        assert isinstance(again, types.InputRequiredResult)
    assert posts(sandbox) == 1


async def test_a_2026_confirmation_does_not_outlive_the_process_that_asked(sandbox: Sandbox) -> None:
    """Without FLORA_STATE_KEYS each process seals under a key of its own: a restart invalidates what it asked."""
    arguments = {"content": "asked before the restart"}
    async with flora_mcp(sandbox, "http", FLORA_CONFIRM_ABOVE="0") as before, \
            Client(before.target, mode="auto", elicitation_callback=Person()) as client:  # type: ignore[arg-type]
        state = (await first_round(client, arguments)).request_state
    async with flora_mcp(sandbox, "http", FLORA_CONFIRM_ABOVE="0") as after, \
            Client(after.target, mode="auto", elicitation_callback=Person()) as client:  # type: ignore[arg-type]
        await refused(client, arguments, state)
    assert posts(sandbox) == 0
