"""Three replicas behind nginx on one PostgreSQL (FLORA_DATABASE_URL): a budget holds across them, any replica answers
for any run, a run survives the replica that waited on it, and a webhook wakes a call waiting on another replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from flora_mcp.sandbox import DEFAULT_WEBHOOK_SECRET, Sandbox
from tests.replicas.replicas_support import (
    free_port,
    kill_the_holder,
    mcp_through,
    nginx_running,
    replicas_running,
    structured,
    wait_ready,
)
from tests.support import polls, posts, sandbox_env

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def shared_env(box: Sandbox, database: str, **values: str) -> dict[str, str]:
    return sandbox_env(box, FLORA_DATABASE_URL=database, FLORA_POLL_INTERVAL="0.1", **values)


async def call(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with mcp_through(url) as session:
        with anyio.fail_after(60):
            return structured(await session.call_tool(tool, arguments))


async def test_a_budget_holds_across_replicas_under_concurrent_calls(box: Sandbox, postgres_url: str,
                                                                    tmp_path: Path) -> None:
    env = shared_env(box, postgres_url, FLORA_PRINCIPAL_BUDGET="0.03")  # qr-code-generator costs 0.01
    with replicas_running(3, env, tmp_path) as replicas:
        await wait_ready(replicas)
        results: list[dict[str, Any]] = []

        async def one(url: str, i: int) -> None:
            results.append(await call(url, "qr-code-generator", {"content": f"c{i}"}))

        # Three calls at once to each replica (straight to it: nginx's round robin would send every session's
        # call to the same one, each session being the same few requests).
        async with anyio.create_task_group() as tg:
            for i in range(9):
                tg.start_soon(one, replicas[i % 3].url, i)
    statuses = sorted(r["status"] for r in results)
    assert statuses.count("completed") == 3, statuses
    assert posts(box) == 3  # each replica alone would have let three through: nine
    refused = [r for r in results if r["status"] != "completed"]
    assert all(r["status"] == "invalid" or r.get("error_code") for r in refused), refused


async def test_any_replica_answers_for_every_run(box: Sandbox, postgres_url: str, tmp_path: Path) -> None:
    with replicas_running(3, shared_env(box, postgres_url), tmp_path) as replicas:
        await wait_ready(replicas)
        with nginx_running(tmp_path / "nginx", [r.port for r in replicas]) as nginx:
            async with mcp_through(nginx.url) as session:
                made = [structured(await session.call_tool("qr-code-generator", {"content": f"a{i}"}))
                        for i in range(3)]
        ids = {r["run_id"] for r in made}
        listed, fetched = [], []
        for replica in replicas:  # each asked directly, past nginx
            listing = await call(replica.url, "flora_list_runs", {"limit": 10})
            listed.append({run["run_id"] for run in listing["data"]["runs"]})
            fetched.append({(await call(replica.url, "flora_get_run", {"run_id": i}))["status"] for i in ids})
        assert len({run for r in replicas for run in r.submitted()}) == 3
    assert listed == [ids] * 3
    assert fetched == [{"completed"}] * 3


async def test_a_run_outlives_the_replica_that_waited_on_it_and_is_found_through_another(
        box: Sandbox, postgres_url: str, tmp_path: Path) -> None:
    box.state.run_delay = 3.0
    with replicas_running(3, shared_env(box, postgres_url), tmp_path) as replicas:
        await wait_ready(replicas)
        with nginx_running(tmp_path / "nginx", [r.port for r in replicas]) as nginx:

            async def doomed() -> None:
                try:
                    await call(nginx.url, "qr-code-generator", {"content": "doomed"})
                except Exception:  # the replica dies under the call
                    return

            async with anyio.create_task_group() as tg:
                tg.start_soon(doomed)
                holder, lost = await kill_the_holder(replicas)
            # The agent lost the call, not the run: the journal every replica shares lists it.
            listing = await call(nginx.url, "flora_list_runs", {"limit": 5})
            [entry] = listing["data"]["runs"]
            picked_up = await call(nginx.url, "flora_get_run", {"run_id": entry["run_id"]})
    assert entry["run_id"] == lost and not holder.alive
    assert picked_up["status"] == "completed"
    assert posts(box) == 1


async def test_a_webhook_landing_on_another_replica_wakes_the_waiting_call(box: Sandbox, postgres_url: str,
                                                                          tmp_path: Path) -> None:
    port = free_port()
    env = shared_env(box, postgres_url, FLORA_PUBLIC_URL=f"http://127.0.0.1:{port}/mcp",
                     FLORA_WEBHOOK_SECRET=DEFAULT_WEBHOOK_SECRET, FLORA_WEBHOOK_POLL_INTERVAL="1000",
                     FLORA_MAX_WAIT="40")
    with replicas_running(3, env, tmp_path) as replicas:
        await wait_ready(replicas)
        waiter, *others = replicas
        # MCP traffic reaches only the first replica, FLORA's callbacks only the other two.
        with nginx_running(tmp_path / "nginx", [waiter.port], [r.port for r in others], port=port) as nginx:
            result = await call(nginx.url, "qr-code-generator", {"content": "woken"})
        logs = {r.name: r.log() for r in replicas}
    assert result["status"] == "completed"
    [delivery] = box.deliveries
    assert delivery.answers == [200] and delivery.url == f"http://127.0.0.1:{port}/webhooks/flora"
    assert waiter.submitted() == [result["run_id"]]
    assert "webhook: run" not in logs[waiter.name]
    assert sum(f"webhook: run {result['run_id']}" in logs[r.name] for r in others) == 1
    assert polls(box) == 1  # no safety-net poll: the only fetch is the one the webhook caused
