"""The TypeScript SDK v1 client (`@modelcontextprotocol/sdk` 1.32.2) on MCP 2025-11-25, over stdio and streamable
HTTP (clients/ts1_client.mjs): the confirmation as form elicitation (accepted, declined, cancelled; refused to a client
that cannot ask), and 2025-11-25 tasks through the SDK's experimental tasks client (`callToolStream` polling
`tasks/get`, the confirmation asked inside `tasks/result`, `tasks/cancel` that leaves the paid run going).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.clients_support import NodeTools
from tests.clients.ts_support import TRANSPORTS, Box, box_fixture, hosted_on, run_client, stdio_target, structured

RELATED_TASK = "io.modelcontextprotocol/related-task"

quick_box = box_fixture(0.2)
slow_box = box_fixture(2.5)


@pytest.fixture(scope="module")
def confirming(quick_box: Box) -> Iterator[str]:
    with hosted_on(quick_box, FLORA_CONFIRM_ABOVE="0") as url:
        yield url


@pytest.fixture(scope="module")
def stateless_confirming(quick_box: Box) -> Iterator[str]:
    with hosted_on(quick_box, "--stateless", FLORA_CONFIRM_ABOVE="0") as url:
        yield url


@pytest.fixture(scope="module")
def slow(slow_box: Box) -> Iterator[str]:
    with hosted_on(slow_box) as url:
        yield url


def ts1(node_tools: NodeTools, scenario: str, box: Box, transport: str, url: str, *options: str,
        **env: str) -> dict[str, Any]:
    target = stdio_target(box, **env) if transport == "stdio" else ["--url", url]
    report = run_client(node_tools, "ts1", scenario, target, *options)
    assert report["server"] == "flora-mcp" and report["server_tasks"]["requests"] == {"tools": {"call": {}}}, report
    return report


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("answer", "status", "code", "runs"), [
    ("accept", "completed", None, 1),
    ("decline", "declined", "confirmation_declined", 0),
    ("cancel", "declined", "confirmation_cancelled", 0),
])
def test_form_elicitation_confirms_the_spending(node_tools: NodeTools, quick_box: Box, confirming: str,
                                                transport: str, answer: str, status: str, code: str | None,
                                                runs: int) -> None:
    content = f"ts1 confirm {answer} {transport}"
    report = ts1(node_tools, "confirm", quick_box, transport, confirming, "--answer", answer,
                 "--arg", f"content={content}", FLORA_CONFIRM_ABOVE="0")
    [shown] = report["shown"]  # one elicitation/create, sent by the server while the call waits
    assert shown["mode"] == "form" and "It costs $0.01" in shown["message"]
    assert f"content={content}" in shown["message"] and "so far" in shown["message"]
    assert shown["requestedSchema"]["required"] == ["confirm"]
    data = structured(report["result"])
    assert report["result"]["isError"] is False and data["status"] == status and data.get("error_code") == code
    if runs:  # what a 2025 client gets of a result: the output as a link, and a small preview marked in _meta
        [output] = data["outputs"]
        _, link, preview = report["result"]["content"]
        assert (link["type"], link["uri"], link["mimeType"]) == ("resource_link", output["url"], "image/png")
        assert preview["type"] == "image" and preview["_meta"] == {"output_id": "qr_code", "preview": True}
        assert link["annotations"] == {"audience": ["user", "assistant"], "priority": 1.0}
        assert preview["annotations"] == {"audience": ["user"], "priority": 0.5}
    assert quick_box.posts(content) == runs


def test_a_client_that_declares_no_elicitation_is_refused_and_nothing_runs(node_tools: NodeTools, quick_box: Box,
                                                                           confirming: str) -> None:
    content = "ts1 cannot ask"
    report = ts1(node_tools, "confirm", quick_box, "http", confirming, "--no-elicitation",
                 "--arg", f"content={content}")
    data = structured(report["result"])
    assert report["result"]["isError"] is True and report["shown"] == []
    assert data["error_code"] == "confirmation_unavailable" and "FLORA_CONFIRM_ABOVE" in data["next_step"]
    assert quick_box.posts(content) == 0


def test_on_stateless_http_a_2025_session_cannot_be_asked_so_it_is_refused(node_tools: NodeTools, quick_box: Box,
                                                                         stateless_confirming: str) -> None:
    # It declares elicitation, but a stateless server has no channel back to send elicitation/create on.
    content = "ts1 stateless"
    report = ts1(node_tools, "confirm", quick_box, "http", stateless_confirming, "--arg", f"content={content}")
    data = structured(report["result"])
    assert report["result"]["isError"] is True and report["shown"] == []
    assert data["error_code"] == "confirmation_unavailable"
    assert quick_box.posts(content) == 0


def test_a_2025_task_is_polled_to_its_result(node_tools: NodeTools, slow_box: Box, slow: str) -> None:
    content = "ts1 task"
    report = ts1(node_tools, "task", slow_box, "stdio", slow, "--arg", f"content={content}")
    messages = report["messages"]
    kinds = [message["type"] for message in messages]
    assert kinds[0] == "taskCreated" and kinds[-1] == "result" and "taskStatus" in kinds, kinds
    task_id = messages[0]["task"]["taskId"]
    assert messages[0]["task"]["ttl"] == 60_000 and messages[0]["task"]["status"] == "working"
    statuses = [m["task"]["status"] for m in messages if m["type"] == "taskStatus"]
    assert statuses[-1] == "completed" and set(statuses) <= {"working", "completed"}, statuses
    result = messages[-1]["result"]
    assert structured(result)["status"] == "completed" and result["_meta"][RELATED_TASK] == {"taskId": task_id}
    assert any(block["type"] == "resource_link" for block in result["content"])
    assert slow_box.posts(content) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("answer", "status", "runs"), [("accept", "completed", 1), ("decline", "declined", 0)])
def test_a_2025_task_asks_the_person_inside_tasks_result(node_tools: NodeTools, quick_box: Box, confirming: str,
                                                         transport: str, answer: str, status: str,
                                                         runs: int) -> None:
    content = f"ts1 task confirm {answer} {transport}"
    report = ts1(node_tools, "task", quick_box, transport, confirming, "--answer", answer,
                 "--arg", f"content={content}", FLORA_CONFIRM_ABOVE="0")
    created, *rest = report["messages"]
    task_id = created["task"]["taskId"]
    assert {"type": "taskStatus", "status": "input_required"} in [
        {"type": m["type"], "status": m["task"]["status"]} for m in rest if m["type"] == "taskStatus"]
    [shown] = report["shown"]
    assert shown["_meta"][RELATED_TASK] == {"taskId": task_id} and "It costs $0.01" in shown["message"]
    result = rest[-1]["result"]
    assert structured(result)["status"] == status and result["_meta"][RELATED_TASK] == {"taskId": task_id}
    assert quick_box.posts(content) == runs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancelling_a_2025_task_stops_waiting_but_the_paid_run_goes_on(node_tools: NodeTools, slow_box: Box,
                                                                       slow: str, transport: str) -> None:
    content = f"ts1 cancel {transport}"
    report = ts1(node_tools, "task", slow_box, transport, slow, "--cancel", "--arg", f"content={content}")
    assert [m["type"] for m in report["messages"]] == ["taskCreated"]
    for seen in (report["cancel"], report["after_cancel"]):
        assert seen["status"] == "cancelled" and "goes on and is charged" in seen["statusMessage"], seen
    assert slow_box.posts(content) == 1
    polled = slow_box.polls()
    deadline = time.monotonic() + 30
    while (run := slow_box.latest_run())["status"] != "completed":
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["charged_cost"] == 0.01 and slow_box.polls() == polled
