"""Three `flora-mcp --stateless` replicas behind a real nginx, driven by the `mcp` SDK's client: what holds whatever
the store (one principal per FLORA key, so FLORA itself holds every run)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from flora_mcp.sandbox import Sandbox
from tests.replicas.replicas_support import (
    kill_the_holder,
    mcp_through,
    nginx_running,
    replicas_running,
    structured,
    wait_ready,
)
from tests.support import TEST_KEY, posts, sandbox_env

pytestmark = pytest.mark.anyio


def env_for(box: Sandbox, tmp_path: Path, **values: str) -> dict[str, str]:
    return sandbox_env(box, FLORA_POLL_INTERVAL="0.1", FLORA_JOURNAL=str(tmp_path / "runs.sqlite3"), **values)


async def test_calls_through_nginx_are_spread_over_the_replicas_and_each_makes_one_run(box: Sandbox,
                                                                                     tmp_path: Path) -> None:
    with replicas_running(3, env_for(box, tmp_path / "x"), tmp_path) as replicas:
        await wait_ready(replicas)
        with nginx_running(tmp_path / "nginx", [r.port for r in replicas]) as nginx:
            async with mcp_through(nginx.url) as session:
                results = [structured(await session.call_tool("qr-code-generator", {"content": f"n{i}"}))
                           for i in range(6)]
        submitted = {r.name: r.submitted() for r in replicas}
    assert [r["status"] for r in results] == ["completed"] * 6
    assert posts(box) == 6 and len({r["run_id"] for r in results}) == 6
    assert sorted(run for runs in submitted.values() for run in runs) == sorted(r["run_id"] for r in results)
    assert all(submitted.values()), submitted  # round robin: every replica made some of the runs


async def test_a_replica_killed_mid_run_leaves_the_run_for_another_replica_to_finish(box: Sandbox,
                                                                                    tmp_path: Path) -> None:
    box.state.run_delay = 3.0
    with replicas_running(3, env_for(box, tmp_path / "x"), tmp_path) as replicas:
        await wait_ready(replicas)
        with nginx_running(tmp_path / "nginx", [r.port for r in replicas]) as nginx:
            failed: list[BaseException] = []

            async def doomed() -> None:
                try:
                    async with mcp_through(nginx.url) as session:
                        await session.call_tool("qr-code-generator", {"content": "doomed"})
                except Exception as exc:  # the replica dies under the call
                    failed.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(doomed)
                holder, run_id = await kill_the_holder(replicas)
            async with mcp_through(nginx.url) as session:
                picked_up = structured(await session.call_tool("flora_get_run", {"run_id": run_id}))
        survivors = [r for r in replicas if r.alive]
    assert failed, "the call on the killed replica did not fail"
    assert len(survivors) == 2 and holder not in survivors
    assert picked_up["status"] == "completed" and picked_up["run_id"] == run_id
    assert posts(box) == 1  # picked up, never submitted again
    assert [run.api_key for run in box.runs] == [TEST_KEY]
