"""Asking the person before a paid call, each protocol era its own way; whether to ask is core/confirm.py's.

    era                         client declared form elicitation      client did not
    2025-11-25 and before       `elicitation/create` while the call   refusal: confirmation_unavailable
                                waits, then the call
    2026-07-28                  `InputRequiredResult`; the retried    refusal: confirmation_unavailable
                                call carries the answer

On 2026-07-28 the `requestState` is sealed by the SDK's `RequestStateBoundary` (AES-GCM under FLORA_STATE_KEYS, or a
key of this process's own), which binds the method, the tool and its arguments, the audience and a TTL: an altered
state, or one for other arguments, is refused (-32602) before any handler runs. Inside it flora-mcp binds the FLORA
account, what the person was asked (the confirmation's fingerprint: price and inputs) and a nonce that is used once:
a replayed answer is refused (-32602), and a call whose price changed since is asked again.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from flora_mcp.core.confirm import Answer, Confirmation, Confirmer
from flora_mcp.server.identity import NAME

__all__ = ["CONFIRM_INPUT", "STATE_TTL", "ConfirmationRounds", "can_ask", "form_schema", "request_state_boundary"]

log = logging.getLogger("flora_mcp.server.confirm")

CONFIRM_INPUT = "flora_confirm"
"""The key of the confirmation in a 2026 `inputRequests` / `inputResponses` map."""
STATE_KIND = "flora-mcp/confirm/1"
STATE_TTL = 600.0
"""Seconds a 2026 confirmation may take to come back; the boundary refuses an older state."""


def request_state_boundary(state_keys: str | None) -> RequestStateBoundary:
    """The SDK's sealing middleware: under FLORA_STATE_KEYS (comma-separated; the first seals, every one opens:
    replicas share them, and a rotation lists the new key first), else under a key of this process alone."""
    keys = [k.strip() for k in (state_keys or "").split(",") if k.strip()]
    security = RequestStateSecurity(keys=keys, ttl=STATE_TTL) if keys else RequestStateSecurity.ephemeral(
        ttl=STATE_TTL)
    return RequestStateBoundary(security, default_audience=NAME)


def can_ask(ctx: ServerRequestContext[Any]) -> bool:
    """Whether this request's client declared form elicitation (a bare `elicitation: {}` means form)."""
    caps = ctx.session.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def form_schema(confirmation: Confirmation) -> dict[str, Any]:
    """The one-field form the person answers: a yes/no, no by default."""
    return {"type": "object", "properties": {"confirm": {
        "type": "boolean", "title": confirmation.question, "default": False,
        "description": "Yes runs it and spends the credits; no sends nothing."}}, "required": ["confirm"]}


def answer_of(result: types.ElicitResult) -> Answer:
    """The person's answer: accept only with `confirm: true`; anything else sends nothing."""
    if result.action == "accept":
        return "accept" if (result.content or {}).get("confirm") is True else "decline"
    return "decline" if result.action == "decline" else "cancel"


@dataclass
class Round:
    """One `tools/call` request's part in a confirmation: how to ask, and what was left to ask in a retry."""

    confirmer: Confirmer
    asked: Confirmation | None = None


@dataclass
class _Consumed:
    """Nonces of 2026 confirmations already answered, each kept until no state carrying it can still be opened."""

    until: dict[str, float] = field(default_factory=dict)

    def take(self, nonce: str) -> bool:
        """Mark `nonce` used; False when it already was (a replay). No await: concurrent retries cannot both win."""
        now = anyio.current_time()
        for old, expiry in list(self.until.items()):
            if expiry < now:
                del self.until[old]
        if nonce in self.until:
            return False
        self.until[nonce] = now + STATE_TTL + 60.0
        return True


class ConfirmationRounds:
    """The server's confirmations: a `Round` per `tools/call`, and the 2026 answers already used."""

    def __init__(self) -> None:
        self._consumed = _Consumed()

    def start(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams, account: str) -> Round:
        """The round of one request.

        Raises:
            MCPError: INVALID_PARAMS, for a 2026 retry whose answer was already used or whose state is not one
                flora-mcp made for this account.
        """
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return Round(confirmer=_by_elicitation(ctx))
        answered = self._answered(params, account)
        this = Round(confirmer=_unavailable)

        async def confirmer(confirmation: Confirmation) -> Answer:
            if answered is not None and answered[0] == confirmation.fingerprint():
                return answered[1]
            if not can_ask(ctx):
                return "unavailable"
            this.asked = confirmation  # asked again when the price or inputs changed since the first round
            return "later"

        this.confirmer = confirmer
        return this

    def input_required(self, asked: Confirmation, account: str) -> types.InputRequiredResult:
        """The 2026 answer that asks the person: a form, and the state its retry must bring back."""
        state = {"kind": STATE_KIND, "nonce": secrets.token_urlsafe(16), "account": account,
                 "fingerprint": asked.fingerprint()}
        form = types.ElicitRequestFormParams(message=asked.message(), requested_schema=form_schema(asked))
        return types.InputRequiredResult(input_requests={CONFIRM_INPUT: types.ElicitRequest(params=form)},
                                         request_state=json.dumps(state))

    def _answered(self, params: types.CallToolRequestParams, account: str) -> tuple[str, Answer] | None:
        """The (fingerprint, answer) a 2026 retry brings, its nonce now used; None when it brings none."""
        response = (params.input_responses or {}).get(CONFIRM_INPUT)
        if params.request_state is None or not isinstance(response, types.ElicitResult):
            return None  # an answer without the state it answers is no answer: ask
        try:
            state = json.loads(params.request_state)
            if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
                raise ValueError("not a flora-mcp confirmation")
            nonce, fingerprint = str(state["nonce"]), str(state["fingerprint"])
        except (ValueError, KeyError) as exc:
            raise MCPError(INVALID_PARAMS, f"This requestState is not a flora-mcp confirmation ({exc}).") from None
        if state.get("account") != account:
            raise MCPError(INVALID_PARAMS, "This confirmation was given for another FLORA account.")
        if not self._consumed.take(nonce):
            log.warning("refused a replayed confirmation of %s", params.name)
            raise MCPError(INVALID_PARAMS, "This confirmation was already used: the call it confirmed was made (or "
                                           "declined) once. Call the tool again to be asked again.")
        return fingerprint, answer_of(response)


async def _unavailable(confirmation: Confirmation) -> Answer:
    return "unavailable"


def _by_elicitation(ctx: ServerRequestContext[Any]) -> Confirmer:
    """2025-era sessions: ask with `elicitation/create` while the call waits."""

    async def confirmer(confirmation: Confirmation) -> Answer:
        if not can_ask(ctx) or not ctx.session.can_send_request:
            return "unavailable"  # not declared, or no channel back (stateless HTTP)
        try:
            result = await ctx.session.elicit_form(confirmation.message(), form_schema(confirmation),
                                                   related_request_id=ctx.request_id)
        except Exception as exc:  # the client failed to answer: nobody said yes
            log.warning("the client did not answer the confirmation of %s: %r", confirmation.tool, exc)
            return "unavailable"
        return answer_of(result)

    return confirmer
