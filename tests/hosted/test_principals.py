"""Every principal is isolated on one shared FLORA key: named and unnamed static tokens here, OAuth people in
test_oauth_flows.py. Each has its own runs, resources, tasks, spend and budget, and cannot reach another's; the
journal records whose each run is.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

from flora_mcp.config import ConfigurationError
from flora_mcp.hosted._auth import StaticToken, parse_tokens
from flora_mcp.sandbox import Sandbox
from tests.hosted.hosted_support import MCP_HEADERS, bearer, data_of, hosted, mcp_session
from tests.support import polls, settings_for

ALICE, BOB = "tok_alice_0123456789", "tok_bob_0123456789ab"
NAMED = SecretStr(f"alice:{ALICE},bob:{BOB}")


def test_tokens_take_names_and_a_token_without_one_is_a_principal_of_its_own() -> None:
    tokens = parse_tokens(f" alice:{ALICE} , {BOB},ci-bot.2:a:b:c, alice:tok_alice_next_000 ,")
    assert [(t.name, t.secret) for t in tokens] == [("alice", ALICE), (None, BOB), ("ci-bot.2", "a:b:c"),
                                                    ("alice", "tok_alice_next_000")]
    # Two tokens of one name are one principal (a rotation); an unnamed one is named by its hash, never itself.
    assert tokens[0].principal == tokens[3].principal == "token:alice"
    assert tokens[1].principal.startswith("token:#") and BOB not in tokens[1].principal
    assert ALICE not in repr(tokens[0])
    # A colon after something that cannot be a name belongs to the token.
    assert parse_tokens("not a name:xyz")[0] == StaticToken("not a name:xyz")
    with pytest.raises(ConfigurationError, match="two names"):
        parse_tokens(f"alice:{ALICE},bob:{ALICE}")


@pytest.mark.anyio
async def test_two_token_holders_run_at_once_and_each_sees_only_their_own_runs_spend_and_resources(
        sandbox: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite3"
    settings = settings_for(sandbox, mcp_tokens=NAMED, journal=str(journal))
    async with hosted(settings) as server, mcp_session(server, bearer(ALICE)) as alice, \
            mcp_session(server, bearer(BOB), "sse") as bob:
        ran: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}

        async def run(who: str, session: Any, count: int) -> None:
            for n in range(count):
                ran[who].append(data_of(await session.call_tool("qr-code-generator", {"content": f"{who} {n}"})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "alice", alice, 2)
            tg.start_soon(run, "bob", bob, 1)
        assert all(r["status"] == "completed" for r in ran["alice"] + ran["bob"])
        alice_ids = {r["run_id"] for r in ran["alice"]}
        (bob_id,) = {r["run_id"] for r in ran["bob"]}

        listed = data_of(await alice.call_tool("flora_list_runs", {}))["data"]
        assert {r["run_id"] for r in listed["runs"]} == alice_ids
        assert {r["run_id"] for r in data_of(await bob.call_tool("flora_list_runs", {}))["data"]["runs"]} == {bob_id}
        alice_spend = data_of(await alice.call_tool("flora_spend", {}))
        bob_spend = data_of(await bob.call_tool("flora_spend", {}))
        assert alice_spend["session_spend"] == 0.02 and alice_spend["data"]["total_charged"] == 0.02
        assert bob_spend["session_spend"] == 0.01 and bob_spend["data"]["total_charged"] == 0.01
        assert json.loads((await bob.read_resource("flora://spend")).contents[0].text)[  # type: ignore[union-attr]
            "total_charged"] == 0.01

        # Bob reaches none of Alice's runs: not as a resource, not by reading it, not by resuming it (and FLORA
        # is not even asked: the run id is not among his).
        assert {str(r.uri) for r in (await bob.list_resources()).resources} == {"flora://spend",
                                                                                f"flora://runs/{bob_id}"}
        stolen = next(iter(alice_ids))
        with pytest.raises(Exception, match="No run"):
            await bob.read_resource(f"flora://runs/{stolen}")
        before = polls(sandbox)
        refused = data_of(await bob.call_tool("flora_get_run", {"run_id": stolen}))
        assert refused["status"] == "invalid" and refused["error_code"] == "run_not_found"
        assert refused.get("outputs", []) == [] and polls(sandbox) == before
        # Alice still resumes her own.
        assert data_of(await alice.call_tool("flora_get_run", {"run_id": stolen}))["status"] == "completed"

    # The journal says whose each run was (audit), and never a token.
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT run_id, account FROM runs").fetchall()
    owners = {run_id: account.rsplit("/", 1)[-1] for run_id, account in rows}
    assert owners == {**dict.fromkeys(alice_ids, "token:alice"), bob_id: "token:bob"}
    assert not any(ALICE in account or BOB in account for _, account in rows)


@pytest.mark.anyio
async def test_unnamed_tokens_are_isolated_from_each_other_too(sandbox: Sandbox) -> None:
    async with hosted(settings_for(sandbox, mcp_tokens=SecretStr(f"{ALICE},{BOB}"))) as server:
        async with mcp_session(server, bearer(ALICE)) as first:
            run_id = data_of(await first.call_tool("qr-code-generator", {"content": "first"}))["run_id"]
        async with mcp_session(server, bearer(BOB)) as second:
            assert data_of(await second.call_tool("flora_list_runs", {}))["data"]["count"] == 0
            assert data_of(await second.call_tool("flora_get_run", {"run_id": run_id}))["error_code"] == (
                "run_not_found")
        async with mcp_session(server, bearer(ALICE)) as again:  # a new session of the same principal
            assert data_of(await again.call_tool("flora_list_runs", {}))["data"]["count"] == 1


@pytest.mark.anyio
async def test_the_principal_budget_is_each_ones_own_and_survives_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    # qr-code-generator costs $0.01: a budget of $0.015 a day allows one run each.
    settings = settings_for(sandbox, mcp_tokens=NAMED, journal=str(tmp_path / "runs.sqlite3"), principal_budget=0.015)
    async with hosted(settings) as server:
        async with mcp_session(server, bearer(ALICE)) as alice, mcp_session(server, bearer(BOB)) as bob:
            assert data_of(await alice.call_tool("qr-code-generator", {"content": "one"}))["status"] == "completed"
            refused = data_of(await alice.call_tool("qr-code-generator", {"content": "two"}))
            assert refused["error_code"] == "cost_cap_exceeded" and "FLORA_PRINCIPAL_BUDGET" in refused[
                "error_message"]
            assert "$0.005 is left today" in refused["error_message"]
            assert data_of(await bob.call_tool("qr-code-generator", {"content": "bob's"}))["status"] == "completed"
    assert len(sandbox.runs) == 2
    async with hosted(settings) as server, mcp_session(server, bearer(ALICE)) as alice:
        again = data_of(await alice.call_tool("qr-code-generator", {"content": "after a restart"}))
        assert again["error_code"] == "cost_cap_exceeded"
    assert len(sandbox.runs) == 2


class RawSession:
    """A 2025-11-25 MCP session over streamable HTTP, by hand: the SDK's client cannot make task-augmented calls."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http, self.url = http, url
        self.headers = {**MCP_HEADERS, **bearer(token)}
        self.next_id = 0

    async def open(self) -> None:
        answer = await self.post("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                "clientInfo": {"name": "raw", "version": "0"}})
        assert "tasks" in answer["result"]["capabilities"], answer
        await self.http.post(self.url, headers=self.headers,
                             json={"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def post(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        response = await self.http.post(self.url, headers=self.headers, json={
            "jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        assert response.status_code == 200, response.text
        if "mcp-session-id" in response.headers:
            self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
            self.headers["mcp-protocol-version"] = "2025-11-25"
        if response.headers["content-type"].startswith("text/event-stream"):
            data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
            return dict(json.loads(data[-1]))
        return dict(response.json())


@pytest.mark.anyio
async def test_each_principal_lists_and_reads_only_its_own_tasks(sandbox: Sandbox) -> None:
    async with hosted(settings_for(sandbox, mcp_tokens=NAMED, tasks=True)) as server, \
            httpx.AsyncClient(timeout=20) as http:
        alice, bob = RawSession(http, f"{server.url}/mcp", ALICE), RawSession(http, f"{server.url}/mcp", BOB)
        await alice.open()
        await bob.open()
        created = await alice.post("tools/call", {"name": "qr-code-generator", "arguments": {"content": "task"},
                                                  "task": {"ttl": 60_000}})
        task_id = created["result"]["task"]["taskId"]
        done = await alice.post("tasks/result", {"taskId": task_id})
        assert done["result"]["structuredContent"]["status"] == "completed"
        assert [t["taskId"] for t in (await alice.post("tasks/list", {}))["result"]["tasks"]] == [task_id]
        assert (await bob.post("tasks/list", {}))["result"]["tasks"] == []
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            assert (await bob.post(method, {"taskId": task_id}))["error"]["code"] == -32602
