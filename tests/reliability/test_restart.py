"""A server killed mid-poll loses nothing: restarted on the same journal, it lists and resumes the run."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from flora_mcp.sandbox import serve_sandbox
from tests.support import TEST_KEY, kill_processes_with, sandbox_config, server_env, stdio_session


@pytest.mark.anyio
async def test_kill_mid_poll_then_resume_from_the_journal(tmp_path: Path) -> None:
    journal = str(tmp_path / "restart-journal.sqlite3")
    async with serve_sandbox(sandbox_config(run_delay=3.0, estimate_scale=0.0)) as box:
        env = server_env(FLORA_API_KEY=TEST_KEY, FLORA_BASE_URL=box.base_url, FLORA_JOURNAL=journal,
                         FLORA_POLL_INTERVAL="0.1")
        failures: list[BaseException] = []
        async with stdio_session([], env) as (session, _):
            async with anyio.create_task_group() as tg:

                async def doomed_call() -> None:
                    try:
                        await session.call_tool("find-and-replace-text",
                                                {"text": "crash world", "find": "world", "replace": "FLORA"})
                    except Exception as exc:  # the server dies under it: "Connection closed"
                        failures.append(exc)

                tg.start_soon(doomed_call)
                with anyio.fail_after(10):
                    while not box.requests_for("get_technique_run"):
                        await anyio.sleep(0.02)
                assert kill_processes_with(journal) == 1
                with anyio.move_on_after(5):
                    while not failures:
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
        assert failures and "closed" in str(failures[0]).lower()
        assert len(box.runs) == 1
        run_id = box.runs[0].run_id

        async with stdio_session([], env) as (session, _):
            listed = await session.call_tool("flora_list_runs", {})
            rows = (listed.structured_content or {})["data"]["runs"]
            assert [r["run_id"] for r in rows] == [run_id]
            assert rows[0]["status"] in ("pending", "running")
            resumed = await session.call_tool("flora_get_run", {"run_id": run_id, "wait_seconds": 10})
            data = resumed.structured_content or {}
            assert data["status"] == "completed" and data["outputs"]
            assert data["technique"]["slug"] == "find-and-replace-text"
        assert len(box.runs) == 1
