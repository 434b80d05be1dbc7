"""Two flora-mcp processes on one PostgreSQL database, as two replicas: the budget holds across them under concurrent
calls, and a run one process made is answered by the other (flora_get_run, flora_list_runs, the spend)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from flora_mcp.sandbox import Sandbox
from tests.support import sandbox_env

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

QR = "qr-code-generator"  # $0.01 a run
ROOT = Path(__file__).resolve().parents[2]


async def worker(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = await anyio.run_process([sys.executable, "-m", "tests.store.store_worker", *args], env=env, cwd=ROOT,
                                   check=False)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def replica_env(sandbox: Sandbox, url: str, tmp_path: Path, **values: str) -> dict[str, str]:
    return sandbox_env(sandbox, FLORA_DATABASE_URL=url, FLORA_POLL_INTERVAL="0.05", FLORA_TEST_GO=str(tmp_path / "go"),
                       PYTHONPATH=str(ROOT), **values)


async def test_a_session_budget_holds_across_two_processes_calling_at_once(sandbox: Sandbox, postgres_url: str,
                                                                          tmp_path: Path) -> None:
    # Both processes serve the same principal (the same key): one session budget of $0.05 for the two. Each fires
    # 6 calls of $0.01 at once: with a budget per process, 10 could pass; shared, 5 at most.
    env = replica_env(sandbox, postgres_url, tmp_path, FLORA_SESSION_BUDGET="0.05")
    answers: list[dict[str, Any]] = []

    async def one() -> None:
        answers.append(await worker(env, "calls", "6", QR, json.dumps({"content": "budget"})))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
        await anyio.sleep(3.0)  # both started and waiting on the file, catalog loaded
        (tmp_path / "go").touch()
    results = [r for answer in answers for r in answer["results"]]
    completed = [r for r in results if r["status"] == "completed"]
    refused = [r for r in results if r["error_code"] == "cost_cap_exceeded"]
    assert len(results) == 12 and len(completed) + len(refused) == 12, results
    assert len(completed) == 5, results  # exactly the budget: 5 of 12 ran, 7 were refused with nothing sent
    assert len(sandbox.runs) == 5
    assert sum(r["charged_cost"] for r in completed) == pytest.approx(0.05)
    # Both processes report the same spend, read from the one database.
    assert {round(a["spend"]["session_spend"], 6) for a in answers} == {0.05}


async def test_a_run_made_by_one_process_is_answered_by_the_other(sandbox: Sandbox, postgres_url: str,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    env = replica_env(sandbox, postgres_url, tmp_path)
    made = await worker(env, "calls", "1", QR, json.dumps({"content": "made by A"}))
    [result] = made["results"]
    assert result["status"] == "completed" and result["run_id"]
    seen = await worker(env, "read", result["run_id"])
    assert seen["get_run"]["status"] == "completed" and seen["get_run"]["run_id"] == result["run_id"]
    assert seen["get_run"]["outputs"] and seen["get_run"]["charged_cost"] == result["charged_cost"]
    assert seen["list_runs"] == [result["run_id"]]
    assert seen["spend"]["by_technique"] == made["spend"]["by_technique"]
    assert seen["entry"]["run_id"] == result["run_id"] and seen["entry"]["status"] == "completed"
    # A process on its own SQLite file knows nothing of it: the answer came from the shared database.
    alone = await worker({**env, "FLORA_DATABASE_URL": "", "FLORA_JOURNAL": str(tmp_path / "alone.sqlite3")},
                         "read", result["run_id"])
    assert alone["list_runs"] == [] and alone["entry"] is None
