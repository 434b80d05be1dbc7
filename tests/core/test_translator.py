"""One translator: each failure class gives the same status, error code and run id through every surface.

The classes are decided by what is known about the money (see `flora_mcp.core.translator`); the surfaces are the
library (`Toolkit.call`), MCP `tools/call` (the SDK's client, in memory), MCP tasks (task-augmented `tools/call` then
`tasks/result`, as JSON-RPC over the same in-memory streams: the SDK's client cannot make that call) and the LLM-API
adapters. Crashes are bugs planted with monkeypatch at a point before or after the create request left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp.shared.memory import create_client_server_memory_streams
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APITimeoutError,
    IdempotencyError,
    InsufficientCreditsError,
    ServerError,
)
from flora_mcp.core.catalog import TechniqueTool
from flora_mcp.core.polling import PollScheduler
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.core.translator import CallPhase, from_failure
from flora_mcp.integrations.adapters import anthropic_tool_result
from flora_mcp.sandbox import Sandbox
from flora_mcp.server.handlers import create_server
from tests.support import mcp_client, posts, settings_for

QR = "qr-code-generator"
UNREACHABLE = "http://127.0.0.1:9/api/v1"


@dataclass(frozen=True)
class Outcome:
    """What a surface answered, reduced to what the translator decides."""

    status: str
    error_code: str | None
    run_id: str | None
    is_error: bool
    words: str  # error message and next step, to check what the agent is told about the money


def outcome(structured: dict[str, Any], is_error: bool) -> Outcome:
    words = f"{structured.get('error_message', '')} {structured.get('next_step', '')}".lower()
    return Outcome(structured["status"], structured.get("error_code"), structured.get("run_id"), is_error, words)


# --- the surfaces --------------------------------------------------------------------------------------------------


async def library(kit: Toolkit, name: str, arguments: dict[str, Any]) -> Outcome:
    result = await kit.call(name, arguments)
    return outcome(result.structured(), result.is_error)


async def mcp(kit: Toolkit, name: str, arguments: dict[str, Any]) -> Outcome:
    async with mcp_client(kit) as client:
        result = await client.call_tool(name, arguments)
    assert result.structured_content is not None
    return outcome(result.structured_content, result.is_error)


class JsonRpcPeer:
    """A bare JSON-RPC client on in-memory streams: it can send what the SDK's client refuses to."""

    def __init__(self, read: Any, write: Any) -> None:
        self._read, self._write, self._id = read, write, 0

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        await self._write.send(SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=self._id, method=method,
                                                             params=params)))
        with anyio.fail_after(20):
            while True:
                message = (await self._read.receive()).message
                if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id == self._id:
                    answer: dict[str, Any] = message.model_dump(by_alias=True, mode="json", exclude_none=True)
                    return answer

    @classmethod
    @asynccontextmanager
    async def connected(cls, kit: Toolkit) -> AsyncIterator[JsonRpcPeer]:
        async def resolve(ctx: object) -> Toolkit:
            return kit

        server = create_server(resolve)
        async with create_client_server_memory_streams() as ((read, write), (server_read, server_write)):
            async with anyio.create_task_group() as group:
                group.start_soon(server.run, server_read, server_write, server.create_initialization_options())
                peer = cls(read, write)
                hello = await peer.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                          "clientInfo": {"name": "translator-test", "version": "1"}})
                assert "tasks" in hello["result"]["capabilities"]
                await write.send(SessionMessage(JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized")))
                yield peer
                group.cancel_scope.cancel()


async def tasks(kit: Toolkit, name: str, arguments: dict[str, Any]) -> Outcome:
    async with JsonRpcPeer.connected(kit) as peer:
        created = await peer.request("tools/call", {"name": name, "arguments": arguments, "task": {"ttl": 60_000}})
        result = created["result"]
        if "task" in result:  # a task was made: its result, once the call has ended
            result = (await peer.request("tasks/result", {"taskId": result["task"]["taskId"]}))["result"]
    return outcome(result["structuredContent"], result["isError"])


async def adapters(kit: Toolkit, name: str, arguments: dict[str, Any]) -> Outcome:
    block = await anthropic_tool_result(kit, {"type": "tool_use", "id": "toolu_1", "name": name, "input": arguments})
    return outcome(json.loads(block["content"][1]["text"]), block["is_error"])


Surface = Callable[[Toolkit, str, dict[str, Any]], Awaitable[Outcome]]
SURFACES = [pytest.param(s, id=s.__name__) for s in (library, mcp, tasks, adapters)]


# --- the failure classes -------------------------------------------------------------------------------------------


def crash(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a bug planted by the test")


def crash_before_the_post(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TechniqueTool, "validate", crash)


def crash_while_the_post_is_out(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    create = FloraClient.create_run

    async def create_then_crash(self: FloraClient, *args: Any, **kwargs: Any) -> Any:
        await create(self, *args, **kwargs)  # FLORA made the run; its answer is lost to a bug
        raise RuntimeError("a bug planted by the test")

    monkeypatch.setattr(FloraClient, "create_run", create_then_crash)


def crash_after_the_run_was_created(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.state.run_delay = 0.5  # still running when created: the wait starts with the poll scheduler
    monkeypatch.setattr(PollScheduler, "first_delay", crash)


def create_answer_lost(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.faults.inject(route="create_technique_run", kind="drop", when="after")
    # ... and the run cannot be looked up either (core/recovery.py would find it): the outcome stays unknown.
    sandbox.faults.inject(route="list_technique_runs", kind="status", status=503)


def flora_refuses(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.faults.inject(route="create_technique_run", status=402)


def connection_lost_during_the_run(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.state.run_delay = 0.5
    for route in ("get_technique_run", "get_run"):
        sandbox.faults.inject(route=route, kind="drop")


def nothing(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    pass


@dataclass(frozen=True)
class Case:
    arrange: Callable[[Sandbox, pytest.MonkeyPatch], None]
    status: str
    error_code: str
    sent: bool  # a create request left: the result may never say that nothing was sent or charged
    run_created: bool  # the result carries the id of the run the sandbox made
    tool: str = QR
    arguments: dict[str, Any] = field(default_factory=lambda: {"content": "translate me"})
    reachable: bool = True


CASES = [
    pytest.param(Case(crash_before_the_post, "invalid", "internal_error", sent=False, run_created=False),
                 id="crash-before-the-post"),
    pytest.param(Case(crash_while_the_post_is_out, "error", "outcome_unknown", sent=True, run_created=False),
                 id="crash-while-the-post-is-out"),
    pytest.param(Case(crash_after_the_run_was_created, "error", "internal_error", sent=True, run_created=True),
                 id="crash-after-the-run-was-created"),
    pytest.param(Case(create_answer_lost, "error", "outcome_unknown", sent=True, run_created=False),
                 id="unknown-outcome"),
    pytest.param(Case(flora_refuses, "error", "insufficient_credits", sent=False, run_created=False),
                 id="flora-refuses"),
    pytest.param(Case(nothing, "failed", "provider_error", sent=True, run_created=True, tool="flaky-provider",
                      arguments={"prompt": "please fail"}), id="failed-run"),
    pytest.param(Case(nothing, "error", "connection_error", sent=False, run_created=False, reachable=False),
                 id="flora-unreachable"),
    pytest.param(Case(connection_lost_during_the_run, "error", "connection_error", sent=True, run_created=True),
                 id="connection-lost-during-the-run"),
]


@asynccontextmanager
async def toolkit_for(sandbox: Sandbox, case: Case) -> AsyncIterator[Toolkit]:
    # No retries: one lost answer is an unknown outcome at once, one dropped poll a lost connection.
    settings = settings_for(sandbox, max_retries=0)
    if case.reachable:
        async with Toolkit(settings) as kit:
            yield kit
        return
    kit = Toolkit(settings.model_copy(update={"base_url": UNREACHABLE}))
    try:
        with pytest.raises(APIConnectionError):
            await kit.load_catalog()
        yield kit
    finally:
        await kit.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("case", CASES)
async def test_each_failure_class_is_told_alike_on_every_surface(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                                 case: Case, surface: Surface) -> None:
    async with toolkit_for(sandbox, case) as kit:
        case.arrange(sandbox, monkeypatch)
        got = await surface(kit, case.tool, case.arguments)
    assert (got.status, got.error_code, got.is_error) == (case.status, case.error_code, True)
    assert posts(sandbox) == (1 if case.sent or case.error_code == "insufficient_credits" else 0)
    if case.run_created:
        assert len(sandbox.runs) == 1 and got.run_id == sandbox.runs[0].run_id
    else:
        assert got.run_id is None
    if case.sent:
        assert "nothing was" not in got.words, got.words
        assert "flora_get_run" in got.words or "flora_list_runs" in got.words or case.status == "failed"
    else:
        assert sandbox.runs == []


# --- the rules themselves ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "unknown"), [
    pytest.param(APIConnectionError("reset", maybe_sent=True), True, id="reset-after-sending"),
    pytest.param(APIConnectionError("refused", maybe_sent=False), False, id="refused-before-sending"),
    pytest.param(APITimeoutError("slow", maybe_sent=True), True, id="no-answer-in-time"),
    pytest.param(ServerError("boom", status_code=502, code="unknown_error"), True, id="5xx"),
    pytest.param(InsufficientCreditsError("no", status_code=402, code="insufficient_credits"), False, id="402"),
    pytest.param(IdempotencyError("dup", status_code=409, code="idempotency_duplicate"), False, id="409"),
    pytest.param(APIResponseError("not JSON"), True, id="unreadable-answer"),
])
def test_one_predicate_says_whether_flora_may_have_acted(error: APIError, unknown: bool) -> None:
    assert error.outcome_unknown is unknown


def test_a_crash_in_a_call_of_several_runs_names_every_run_and_the_one_still_out() -> None:
    call = CallPhase()
    first, second, third = call.for_run(), call.for_run(), call.for_run()
    for run in (first, second, third):
        run.sending()
    first.created("run_a")
    second.created("run_b")
    assert (first.run_ids, third.run_ids, call.run_ids, call.in_flight) == (["run_a"], [], ["run_a", "run_b"], 1)
    result = from_failure("cctv-cam", ExceptionGroup("runs", [RuntimeError("bug")]), call)
    assert result.status == "error" and result.error_code == "internal_error" and result.run_id is None
    assert [r.run_id for r in result.runs] == ["run_a", "run_b"]
    assert '"run_a", "run_b"' in (result.next_step or "") and "1 more run request" in (result.next_step or "")
    # Each run's own failure is told by its own phase: the one still out is an unknown outcome, not "run_a".
    lost = from_failure("cctv-cam", APIConnectionError("reset", maybe_sent=True), third)
    assert (lost.error_code, lost.run_id) == ("outcome_unknown", None)


def test_a_refusal_of_the_create_itself_is_flora_saying_no_even_while_marked_in_flight() -> None:
    phase = CallPhase()
    phase.sending()
    result = from_failure("cctv-cam", InsufficientCreditsError("no", status_code=402, code="insufficient_credits"),
                          phase)
    assert (result.status, result.error_code) == ("error", "insufficient_credits")
