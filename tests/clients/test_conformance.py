"""The MCP conformance suite (@modelcontextprotocol/conformance) against flora-mcp over streamable HTTP, in both
protocol eras: each scenario that applies runs at 2025-11-25 (the handshake, sessions) and/or 2026-07-28 (stateless,
per-request `_meta`), against a stateful and a stateless server.

Pinned at 0.2.0-alpha.12: the latest release, 0.1.16, has no 2026-07-28 scenario; the 0.2.0 alphas are the only ones
that carry them (server-stateless, caching, sep-2164, input-required-result-*, tasks-*) and still run the 2025 ones.

Most of the suite's server scenarios call fixture tools, prompts and resources that only its reference server has
(`test_tool_with_progress`, `slow_compute`, `test://static-text`, ...). The ones below apply to any server; the rest
are listed with the reason they do not apply, and a test makes sure a new version of the suite cannot add a scenario
unnoticed. Inside an applicable scenario, the few checks that need a fixture are listed too (FIXTURE_CHECKS), each
with its reason; any other check that fails, fails the test. (A check that calls a fixture tool can pass against
flora-mcp by accident: the unknown tool is an isError result with text. tools-call-simple-text and tools-call-error
pass that way, and are ruled out for it; so are the checks of server-stateless that call a fixture tool and look only
at the shape of the stream, and tasks-dispatch-and-envelope's immediate-result check. They prove nothing.)
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.clients.clients_support import NODE_BIN, NodeTools, hosted_server, tail

Outcome = tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]

OLD, NEW = "2025-11-25", "2026-07-28"

APPLIES: dict[str, tuple[tuple[str, ...], str]] = {
    "server-initialize": ((OLD,), "initialize handshake and server info"),
    "server-session-lifecycle": ((OLD,), "initialized notification, DELETE ends the session, then 404 (stateful)"),
    "ping": ((OLD,), "ping answers {}"),
    "server-stateless": ((NEW,), "per-request _meta checked (-32602, HTTP 400), server/discover and serverInfo, "
                                  "unsupported version and header mismatch, removed methods 404, subscriptions/listen"),
    "tools-list": ((OLD, NEW), "every tool has a name, a description and an inputSchema; names and order stable"),
    "resources-list": ((OLD, NEW), "every resource (flora://spend, runs) has a uri and a name"),
    "sep-2164-resource-not-found": ((NEW,), "an unknown resource is -32602 with data.uri, never empty contents"),
    "caching": ((NEW,), "ttlMs/cacheScope on tools/list, resources/list, templates and resources/read"),
    "dns-rebinding-protection": ((OLD, NEW), "a foreign Host/Origin gets a 4xx, a loopback one a 2xx"),
    "http-header-validation": ((NEW,), "Mcp-Method/Mcp-Name headers that do not match the body are refused"),
    "input-required-result-unsupported-methods": ((NEW,), "no InputRequiredResult on tools/list or prompts/list"),
    "tasks-capability-negotiation": ((NEW,), "the tasks extension in server/discover (no v1 capabilities.tasks); "
                                              "tasks/* refused with -32021 to a client that did not declare it"),
    "tasks-dispatch-and-envelope": ((NEW,), "tasks/result and tasks/list are gone (-32601), tasks/get of an unknown "
                                             "id is -32602"),
    "server-sse-multiple-streams": ((OLD, NEW), "three concurrent POST SSE streams all work"),
}

EXTENSIONS = {"tasks-capability-negotiation", "tasks-dispatch-and-envelope"}
"""Extension scenarios, on no revision's timeline: run at 2026-07-28 with --force (the extension is a 2026 one)."""

SESSIONS_ONLY = {"server-session-lifecycle", "server-sse-multiple-streams"}
"""Scenarios that need sessions: 2025-11-25 only against the stateful server (on 2026-07-28 there are none)."""

FIXTURE_CHECKS = {
    "sep-2575-server-rejects-undeclared-capability": "calls the suite's fixture tool test_missing_capability",
    "sep-2575-missing-capability-http-400": "the HTTP status of test_missing_capability's -32021",
    "sep-2575-server-sends-tools-list-changed-on-subscription":
        "changes the tool list by calling the fixture tool test_trigger_tool_change (flora-mcp's list changes with "
        "its catalog: tests/server/test_eras.py::test_a_tool_list_change_reaches_a_2026_client_on_its_listen_stream)",
    "sep-2549-prompts-list-caching-hints": "flora-mcp has no prompts: prompts/list is -32601, as it should be",
    "tasks-per-request-meta-opt-in": "calls the fixture tool slow_compute",
    "tasks-server-directed-creation-no-hint": "calls the fixture tool slow_compute",
    "sep-2663-durable-create-strong-consistency": "calls the fixture tool slow_compute",
}

FIXTURE = "calls the suite's fixture tool"
TASK_FIXTURES = ("needs the fixture tools slow_compute, failing_job, confirm_delete or multi_input; the extension "
                 "is tested by tests/server/test_tasks_ext.py and tests/clients/test_python_sdk_tasks.py")
INPUT_REQUIRED = ("calls a fixture tool test_input_required_result_*; flora-mcp's own InputRequiredResult (the "
                  "confirmation) is tested by tests/clients/test_python_sdk_client.py")
NOT_APPLICABLE = {
    "logging-set-level": "flora-mcp declares no logging capability (logs go to stderr; MCP logging is deprecated)",
    "completion-complete": "calls completion/complete on the suite's test prompt; flora-mcp has no prompts",
    "tools-call-simple-text": f"{FIXTURE} test_simple_text",
    "tools-call-image": f"{FIXTURE} test_image_content",
    "tools-call-audio": f"{FIXTURE} test_audio_content",
    "tools-call-embedded-resource": f"{FIXTURE} test_embedded_resource",
    "tools-call-mixed-content": f"{FIXTURE} test_multiple_content_types",
    "tools-call-with-logging": f"{FIXTURE} test_tool_with_logging",
    "tools-call-error": f"{FIXTURE} test_error_handling",
    "tools-call-with-progress": f"{FIXTURE} test_tool_with_progress",
    "tools-call-sampling": f"{FIXTURE} test_sampling; flora-mcp never samples",
    "tools-call-elicitation": f"{FIXTURE} test_elicitation; flora-mcp's own (the confirmation) is tested by "
                              "tests/clients/test_python_sdk_client.py",
    "json-schema-2020-12": "looks for the suite's fixture tool json_schema_2020_12_tool",
    "elicitation-sep1034-defaults": f"{FIXTURE} test_elicitation_sep1034_defaults",
    "elicitation-sep1330-enums": f"{FIXTURE} test_elicitation_sep1330_enums",
    "server-sse-polling": f"{FIXTURE} test_reconnection, which closes its stream mid-call",
    "resources-read-text": "reads the fixture resource test://static-text",
    "resources-read-binary": "reads the fixture resource test://static-binary",
    "resources-templates-read": "reads the fixture template test://template/{id}/data",
    "resources-subscribe": "flora-mcp declares no resource subscriptions; subscribes to test://watched-resource",
    "resources-unsubscribe": "flora-mcp declares no resource subscriptions",
    "prompts-list": "flora-mcp has no prompts capability",
    "prompts-get-simple": "gets the fixture prompt test_simple_prompt",
    "prompts-get-with-args": "gets the fixture prompt test_prompt_with_arguments",
    "prompts-get-embedded-resource": "gets the fixture prompt test_prompt_with_embedded_resource",
    "prompts-get-with-image": "gets the fixture prompt test_prompt_with_image",
    "http-custom-header-server-validation": "needs a tool whose inputSchema marks x-mcp-header parameters; "
                                            "flora-mcp's have none (FLORA inputs travel in the body)",
    "sep-2640-skills-directory": "the skills extension: flora-mcp serves no skills",
    "sep-2640-skills-enumeration": "the skills extension: flora-mcp serves no skills",
    "sep-2640-skills-manifest": "the skills extension: flora-mcp serves no skills",
    "tasks-lifecycle": TASK_FIXTURES,
    "tasks-wire-fields": TASK_FIXTURES,
    "tasks-request-state-removal": TASK_FIXTURES,
    "tasks-mrtr-input": TASK_FIXTURES,
    "tasks-request-headers": TASK_FIXTURES,
    "tasks-required-task-error": TASK_FIXTURES,
    "tasks-mrtr-composition": TASK_FIXTURES,
    "tasks-status-notifications": "the optional notifications/tasks/status, which flora-mcp does not send "
                                  "(clients poll tasks/get); the suite skips it",
    "input-required-result-basic-elicitation": INPUT_REQUIRED,
    "input-required-result-basic-sampling": INPUT_REQUIRED,
    "input-required-result-basic-list-roots": INPUT_REQUIRED,
    "input-required-result-request-state": INPUT_REQUIRED,
    "input-required-result-multiple-input-requests": INPUT_REQUIRED,
    "input-required-result-multi-round": INPUT_REQUIRED,
    "input-required-result-missing-input-response": INPUT_REQUIRED,
    "input-required-result-non-tool-request": "reads a fixture resource that asks for input",
    "input-required-result-result-type": INPUT_REQUIRED,
    "input-required-result-tampered-state": INPUT_REQUIRED + " (tampering included)",
    "input-required-result-capability-check": INPUT_REQUIRED,
    "input-required-result-ignore-extra-params": INPUT_REQUIRED,
    "input-required-result-validate-input": INPUT_REQUIRED,
}


def listed(node_tools: NodeTools) -> dict[str, set[str]]:
    """Every server scenario of the installed suite, and the revisions (or "extension") it is tagged with."""
    proc = node_tools.run([str(NODE_BIN / "conformance"), "list", "--server"], timeout=30)
    assert proc.returncode == 0, tail(proc.stderr)
    found = re.findall(r"^\s+- (\S+) \[([^\]]*)\]", proc.stdout, flags=re.MULTILINE)
    assert found, proc.stdout
    return {name: set(tags.split(",")) for name, tags in found}


def test_every_server_scenario_of_the_suite_is_either_run_or_ruled_out(node_tools: NodeTools) -> None:
    known = listed(node_tools)
    assert set(known) == set(APPLIES) | set(NOT_APPLICABLE), {
        "new in the suite, decide": sorted(set(known) - set(APPLIES) - set(NOT_APPLICABLE)),
        "gone from the suite": sorted((set(APPLIES) | set(NOT_APPLICABLE)) - set(known))}
    for name, (eras, _) in APPLIES.items():  # each is run at a revision the suite has it for
        assert set(eras) <= known[name] | ({NEW} if "extension" in known[name] else set()), (name, known[name])


CASES = [(mode, era, name) for name, (eras, _) in APPLIES.items() for era in eras for mode in ("stateful", "stateless")
         if not (mode == "stateless" and era == OLD and name in SESSIONS_ONLY)]


@pytest.fixture(scope="module")
def outcomes(node_tools: NodeTools, hosted_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[tuple[str, str, str], Outcome]]:
    """Every case, four at a time (each scenario opens its own sessions), against a stateful and a stateless server."""
    out = tmp_path_factory.mktemp("conformance")
    with hosted_server("--stateless") as stateless_url:
        urls = {"stateful": hosted_url, "stateless": stateless_url}

        def run(case: tuple[str, str, str]) -> Outcome:
            mode, era, scenario = case
            force = ["--force"] if scenario in EXTENSIONS else []
            return node_tools.conformance(urls[mode], scenario, out / mode / era / scenario, era, *force)

        with ThreadPoolExecutor(max_workers=4) as pool:
            yield dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize(("mode", "era", "scenario"), CASES, ids=[f"{m}-{e}-{n}" for m, e, n in CASES])
def test_conformance_scenario(outcomes: dict[tuple[str, str, str], Outcome], mode: str, era: str,
                              scenario: str) -> None:
    proc, checks = outcomes[mode, era, scenario]
    assert checks, f"no checks saved (exit {proc.returncode}):\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
    failed = [c for c in checks if c["status"] in ("FAILURE", "WARNING") and c["id"] not in FIXTURE_CHECKS]
    assert not failed, [(c["id"], c["status"], c.get("errorMessage"), c.get("details")) for c in failed]
    assert any(c["status"] == "SUCCESS" for c in checks), checks
    if not any(c["id"] in FIXTURE_CHECKS for c in checks):
        assert proc.returncode == 0, tail(proc.stdout)
