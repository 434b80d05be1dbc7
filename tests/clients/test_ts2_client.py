"""The TypeScript SDK v2 client (`@modelcontextprotocol/client` 2.4.0, version negotiation `auto`) and its tasks
extension client (`@modelcontextprotocol/ext-tasks` 0.2.2) on MCP 2026-07-28, over stdio and streamable HTTP (stateful,
and stateless as hosted replicas run) (clients/ts2_client.mjs): discovery, a call's blocks, the confirmation answered
inside `input_required` rounds, sealed `requestState` refused when tampered or replayed, and tasks: unasked for a long
run, followed with `tasks/get`, cancelled without stopping the paid run, and waiting in `input_required` for the person.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from flora_mcp.server.tasks_ext import TASK_AFTER, TASKS_EXTENSION
from tests.clients.clients_support import NodeTools
from tests.clients.ts_support import (
    INVALID_PARAMS,
    TRANSPORTS,
    WITH_STATELESS,
    Box,
    box_fixture,
    hosted_on,
    run_client,
    stdio_target,
    structured,
)

quick_box = box_fixture(0.2)
slow_box = box_fixture(TASK_AFTER + 2.5)  # every run outlasts the wait before a declaring call becomes a task


def target(box: Box, transport: str, servers: dict[str, str]) -> list[str]:
    if transport == "stdio":
        return stdio_target(box, **({"FLORA_CONFIRM_ABOVE": "0"} if "confirm" in servers else {}))
    return ["--url", servers[transport]]


@contextmanager
def both_http(box: Box, **env: str) -> Iterator[dict[str, str]]:
    with hosted_on(box, **env) as stateful, hosted_on(box, "--stateless", **env) as stateless:
        yield {"http": stateful, "http-stateless": stateless}


@pytest.fixture(scope="module")
def confirming(quick_box: Box) -> Iterator[dict[str, str]]:
    """Hosted flora-mcp servers that ask before every paid call."""
    with both_http(quick_box, FLORA_CONFIRM_ABOVE="0") as urls:
        yield {**urls, "confirm": "0"}


@pytest.fixture(scope="module")
def plain(quick_box: Box) -> Iterator[dict[str, str]]:
    with both_http(quick_box) as urls:
        yield urls


@pytest.fixture(scope="module")
def slow(slow_box: Box) -> Iterator[dict[str, str]]:
    with both_http(slow_box) as urls:
        yield urls


def ts2(node_tools: NodeTools, scenario: str, args: list[str], *options: str, fails: bool = False) -> dict[str, Any]:
    report = run_client(node_tools, "ts2", scenario, args, *options, fails=fails)
    assert (report["era"], report["protocol_version"]) == ("modern", "2026-07-28"), report
    return report


@pytest.mark.parametrize("transport", WITH_STATELESS)
def test_discovery_tools_and_a_result_with_its_links(node_tools: NodeTools, quick_box: Box, plain: dict[str, str],
                                                     transport: str) -> None:
    content = f"ts2 call {transport}"
    report = ts2(node_tools, "call", target(quick_box, transport, plain), "--arg", f"content={content}")
    assert report["server"]["name"] == "flora-mcp" and report["server"]["websiteUrl"] == "https://flora.ai"
    assert "image/png" in report["server"]["icons"]
    discover = report["discover"]
    assert discover["supportedVersions"] == ["2026-07-28"] and discover["serverInfo"] == "flora-mcp"
    assert TASKS_EXTENSION in discover["capabilities"]["extensions"]
    assert "confirm" in discover["instructions"] and discover["ttlMs"] > 0
    assert {"qr-code-generator", "cctv-cam", "flora_get_run"} <= set(report["tools"])
    assert report["tools_cache"]["ttlMs"] > 0 and report["tools_cache"]["cacheScope"] == "private"

    result = report["result"]
    data = structured(result)
    assert result["isError"] is False and data["status"] == "completed" and data["charged_cost"] == 0.01
    [output] = data["outputs"]
    text, link, preview = result["content"]
    assert text["type"] == "text" and output["url"] in text["text"]
    assert link == {"type": "resource_link", "uri": output["url"], "name": "qr-code-generator qr_code",
                    "mimeType": "image/png", "description": "output qr_code (imageUrl)",
                    "annotations": {"audience": ["user", "assistant"], "priority": 1.0}}
    # The preview is marked in _meta and, in annotations, as the person's, not the model's; the SDK passes through
    # exactly what came.
    assert preview["type"] == "image" and preview["mimeType"] == "image/jpeg" and preview["data_length"] > 1000
    assert preview["_meta"] == {"output_id": "qr_code", "preview": True}
    assert preview["annotations"] == {"audience": ["user"], "priority": 0.5}
    assert quick_box.posts(content) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("answer", "status", "code", "runs"), [
    ("accept", "completed", None, 1),
    ("decline", "declined", "confirmation_declined", 0),
    ("cancel", "declined", "confirmation_cancelled", 0),
    ("accept-no", "declined", "confirmation_declined", 0),
])
def test_the_person_answers_inside_the_input_required_rounds(node_tools: NodeTools, quick_box: Box,
                                                             confirming: dict[str, str], transport: str, answer: str,
                                                             status: str, code: str | None, runs: int) -> None:
    content = f"ts2 confirm {answer} {transport}"
    report = ts2(node_tools, "confirm", target(quick_box, transport, confirming), "--answer", answer,
                 "--arg", f"content={content}")
    [shown] = report["shown"]  # asked once, through the handler registered for elicitation/create
    assert shown["how"] == "elicitation/create" and shown["mode"] == "form"
    assert "It costs $0.01" in shown["message"] and f"content={content}" in shown["message"]
    assert shown["requestedSchema"]["properties"]["confirm"]["type"] == "boolean"
    data = structured(report["result"])
    assert report["result"]["isError"] is False and data["status"] == status and data.get("error_code") == code
    if runs == 0:
        assert data["charged_cost"] == 0 and "nothing was charged" in report["result"]["content"][0]["text"]
    assert quick_box.posts(content) == runs


def test_one_round_is_all_a_confirmation_takes(node_tools: NodeTools, quick_box: Box,
                                               confirming: dict[str, str]) -> None:
    # inputRequired.maxRounds: 1 is enough (asked once, then the retry runs it); with 0 the client gives up before
    # asking, and nothing runs.
    args = target(quick_box, "http-stateless", confirming)
    once = ts2(node_tools, "confirm", args, "--max-rounds", "1", "--arg", "content=ts2 one round")
    assert structured(once["result"])["status"] == "completed" and len(once["shown"]) == 1
    never = ts2(node_tools, "confirm", args, "--max-rounds", "0", "--arg", "content=ts2 no round", fails=True)
    assert never["error"]["code"] == "INPUT_REQUIRED_ROUNDS_EXCEEDED" and never["shown"] == []
    assert quick_box.posts("ts2 one round") == 1 and quick_box.posts("ts2 no round") == 0


@pytest.mark.parametrize("transport", WITH_STATELESS)
def test_a_client_that_cannot_ask_is_refused_and_nothing_runs(node_tools: NodeTools, quick_box: Box,
                                                              confirming: dict[str, str], transport: str) -> None:
    content = f"ts2 cannot ask {transport}"
    report = ts2(node_tools, "confirm", target(quick_box, transport, confirming), "--no-elicitation",
                 "--arg", f"content={content}")
    data = structured(report["result"])
    assert report["result"]["isError"] is True and report["shown"] == []
    assert data["error_code"] == "confirmation_unavailable" and "cannot ask them" in data["error_message"]
    assert "FLORA_CONFIRM_ABOVE" in data["next_step"]
    assert quick_box.posts(content) == 0


@pytest.mark.parametrize("transport", WITH_STATELESS)
def test_a_tampered_or_replayed_request_state_is_refused(node_tools: NodeTools, quick_box: Box,
                                                         confirming: dict[str, str], transport: str) -> None:
    content = f"ts2 state {transport}"
    report = ts2(node_tools, "state", target(quick_box, transport, confirming), "--arg", f"content={content}")
    first = report["first"]  # inputRequired.autoFulfill false + allowInputRequired: the raw answer
    assert first["resultType"] == "input_required" and first["inputKeys"] == ["flora_confirm"]
    assert first["method"] == "elicitation/create" and "It costs $0.01" in first["message"]
    state = first["requestState"]
    assert state.startswith("v1.") and "qr-code-generator" not in state and content not in state  # sealed
    for refused in ("tampered", "other_arguments"):
        assert report[refused]["ok"] is False and report[refused]["error"]["code"] == INVALID_PARAMS, report[refused]
    assert report["genuine"]["ok"] is True and structured(report["genuine"]["result"])["status"] == "completed"
    replayed = report["replayed"]
    assert replayed["ok"] is False and replayed["error"]["code"] == INVALID_PARAMS
    assert "already used" in replayed["error"]["message"]
    assert quick_box.posts(content) == 1  # the genuine retry alone


@pytest.mark.parametrize("transport", WITH_STATELESS)
def test_a_long_run_is_a_task_unasked_and_tasks_get_follows_it(node_tools: NodeTools, slow_box: Box,
                                                               slow: dict[str, str], transport: str) -> None:
    content = f"ts2 task {transport}"
    report = ts2(node_tools, "task", target(slow_box, transport, slow), "--arg", f"content={content}")
    assert report["task_capabilities"]["execution"] is True and report["task_capabilities"]["cancellation"] is True
    assert report["kind"] == "task"
    created = report["raw"][0]  # the tools/call itself, sent through our rawDispatch
    assert (created["method"], created["resultType"], created["status"]) == ("tools/call", "task", "working")
    snapshots = report["snapshots"]
    assert snapshots[0]["status"] == "working" and snapshots[0]["pollIntervalMs"] >= 100
    assert snapshots[-1]["status"] == "completed" and [s["status"] for s in snapshots].count("completed") == 1
    assert all(entry["method"] in ("tools/call", "tasks/get") for entry in report["raw"])  # detach cancels nothing
    outcome = report["outcome"]
    assert outcome["status"] == "completed" and structured(outcome["result"])["status"] == "completed"
    assert any(block["type"] == "resource_link" for block in outcome["result"]["content"])
    assert slow_box.posts(content) == 1


@pytest.mark.parametrize("transport", WITH_STATELESS)
def test_cancelling_a_task_stops_waiting_but_the_paid_run_goes_on(node_tools: NodeTools, slow_box: Box,
                                                                  slow: dict[str, str], transport: str) -> None:
    content = f"ts2 cancel {transport}"
    report = ts2(node_tools, "task", target(slow_box, transport, slow), "--cancel", "--arg", f"content={content}")
    assert report["kind"] == "task" and report["cancel"]["ok"] is True
    before, after = report["snapshots"]
    assert before["status"] == "working"
    assert after["status"] == "cancelled" and "goes on and is charged" in after["statusMessage"]
    assert report["outcome"]["status"] == "cancelled"
    assert report["cancel_again"]["error"]["code"] == INVALID_PARAMS  # cancelled once
    assert slow_box.posts(content) == 1
    polled = slow_box.polls()
    deadline = time.monotonic() + 30
    while (run := slow_box.latest_run())["status"] != "completed":
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["charged_cost"] == 0.01  # the run went on and was paid for
    assert slow_box.polls() == polled  # while nobody waited for it


@pytest.mark.parametrize("transport", WITH_STATELESS)
@pytest.mark.parametrize(("answer", "status", "runs"), [("accept", "completed", 1), ("decline", "declined", 0)])
def test_a_call_needing_confirmation_is_a_task_in_input_required(node_tools: NodeTools, quick_box: Box,
                                                                 confirming: dict[str, str], transport: str,
                                                                 answer: str, status: str, runs: int) -> None:
    content = f"ts2 task confirm {answer} {transport}"
    report = ts2(node_tools, "task-confirm", target(quick_box, transport, confirming), "--answer", answer,
                 "--arg", f"content={content}")
    created = report["raw"][0]
    assert (created["resultType"], created["status"]) == ("task", "input_required")
    task_id = report["events"][0]["taskId"]
    assert report["events"][0]["status"] == "input_required"
    assert report["events"][0]["statusMessage"] == "Run QR Code Generator for $0.01?"
    [shown] = report["shown"]  # ext-tasks handed the form to onInputRequest, and sent the answer by tasks/update
    assert shown["how"] == "elicitation via task-update" and shown["taskId"] == task_id
    assert "It costs $0.01" in shown["message"]
    assert "tasks/update" in [entry["method"] for entry in report["raw"]]
    outcome = report["outcome"]
    assert outcome["status"] == "completed" and structured(outcome["result"])["status"] == status
    assert quick_box.posts(content) == runs


@pytest.mark.parametrize("transport", WITH_STATELESS)
def test_cancelling_a_task_that_waits_for_the_person_sends_nothing(node_tools: NodeTools, quick_box: Box,
                                                                    confirming: dict[str, str],
                                                                    transport: str) -> None:
    content = f"ts2 cancel unanswered {transport}"
    report = ts2(node_tools, "task", target(quick_box, transport, confirming), "--cancel",
                 "--arg", f"content={content}")
    before, after = report["snapshots"]
    assert before["status"] == "input_required" and report["shown"] == []  # cancelled before answering
    assert after["status"] == "cancelled" and "nothing was charged" in after["statusMessage"]
    assert quick_box.posts(content) == 0
