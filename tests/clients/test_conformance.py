"""The MCP conformance suite (@modelcontextprotocol/conformance) against flora-mcp over streamable HTTP.

Most of the suite's server scenarios call fixture tools, prompts and resources that only its reference server has
(`test_tool_with_progress`, `test://static-text`, ...). The ones below apply to any server and run against a stateful
and a stateless server; the rest are listed with the reason they do not apply, and a test makes sure a new version of
the suite cannot add a scenario unnoticed. (tools-call-simple-text and tools-call-error pass against flora-mcp by
accident: their fixture tool is unknown, and an unknown tool is an isError result with text. They prove nothing.)
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

APPLIES = {
    "server-initialize": "initialize handshake and server info",
    "ping": "ping answers {}",
    "tools-list": "every tool has a name, a description and an inputSchema",
    "resources-list": "every resource (flora://spend, runs) has a uri and a name",
    "dns-rebinding-protection": "a foreign Host/Origin gets a 4xx, a loopback one a 2xx",
    "server-sse-multiple-streams": "three concurrent POST SSE streams in one session all work",
}

NOT_APPLICABLE = {
    "logging-set-level": "flora-mcp declares no logging capability (logs go to stderr; MCP logging is deprecated)",
    "completion-complete": "calls completion/complete on the suite's test prompt; flora-mcp has no prompts",
    "tools-call-simple-text": "calls the suite's fixture tool test_simple_text",
    "tools-call-image": "calls the suite's fixture tool test_image_content",
    "tools-call-audio": "calls the suite's fixture tool test_audio_content",
    "tools-call-embedded-resource": "calls the suite's fixture tool test_embedded_resource",
    "tools-call-mixed-content": "calls the suite's fixture tool test_multiple_content_types",
    "tools-call-with-logging": "calls the suite's fixture tool test_tool_with_logging",
    "tools-call-error": "calls the suite's fixture tool test_error_handling",
    "tools-call-with-progress": "calls the suite's fixture tool test_tool_with_progress",
    "tools-call-sampling": "calls the suite's fixture tool test_sampling; flora-mcp never samples",
    "tools-call-elicitation": "calls the suite's fixture tool test_elicitation; flora-mcp never elicits",
    "json-schema-2020-12": "looks for the suite's fixture tool json_schema_2020_12_tool",
    "elicitation-sep1034-defaults": "calls a fixture tool that elicits; flora-mcp never elicits",
    "elicitation-sep1330-enums": "calls a fixture tool that elicits; flora-mcp never elicits",
    "server-sse-polling": "calls the fixture tool test_reconnection, which closes its stream mid-call",
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
}


def test_every_server_scenario_of_the_suite_is_either_run_or_ruled_out(node_tools: NodeTools) -> None:
    proc = node_tools.run([str(NODE_BIN / "conformance"), "list", "--server"], timeout=30)
    assert proc.returncode == 0, tail(proc.stderr)
    known = set(re.findall(r"^\s+- (\S+)", proc.stdout, flags=re.MULTILINE))
    assert known, proc.stdout
    assert known == set(APPLIES) | set(NOT_APPLICABLE), {
        "new in the suite, decide": sorted(known - set(APPLIES) - set(NOT_APPLICABLE)),
        "gone from the suite": sorted((set(APPLIES) | set(NOT_APPLICABLE)) - known)}


# Stateless streamable HTTP (replicas behind a load balancer) has no sessions, hence no multiple streams per session.
STATELESS_APPLIES = [name for name in APPLIES if name != "server-sse-multiple-streams"]
CASES = [("stateful", name) for name in APPLIES] + [("stateless", name) for name in STATELESS_APPLIES]


@pytest.fixture(scope="module")
def outcomes(node_tools: NodeTools, hosted_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[tuple[str, str], Outcome]]:
    """Every case, run at once (each scenario opens its own sessions) against a stateful and a stateless server."""
    out = tmp_path_factory.mktemp("conformance")
    with hosted_server("--stateless") as stateless_url:
        urls = {"stateful": hosted_url, "stateless": stateless_url}

        def run(case: tuple[str, str]) -> Outcome:
            mode, scenario = case
            return node_tools.conformance(urls[mode], scenario, out / mode / scenario)

        with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
            yield dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize(("mode", "scenario"), CASES, ids=[f"{mode}-{name}" for mode, name in CASES])
def test_conformance_scenario(outcomes: dict[tuple[str, str], Outcome], mode: str, scenario: str) -> None:
    proc, checks = outcomes[mode, scenario]
    assert checks, f"no checks saved (exit {proc.returncode}):\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
    failed = [c for c in checks if c["status"] in ("FAILURE", "WARNING")]
    assert not failed, [(c["id"], c["status"], c.get("errorMessage"), c.get("details")) for c in failed]
    assert any(c["status"] == "SUCCESS" for c in checks), checks
    assert proc.returncode == 0, tail(proc.stdout)
