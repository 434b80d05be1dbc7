"""A flora-mcp process of its own for the two-process tests: `python -m tests.store.store_worker ACTION ...`.

Its settings come from the environment (FLORA_DATABASE_URL, FLORA_BASE_URL, FLORA_API_KEY, budgets), as a replica's
would. It waits for the file named by FLORA_TEST_GO to exist before it calls (so both processes call at once), then
prints one JSON line on stdout: what it saw.

    calls N TOOL ARGS_JSON      N concurrent calls; each result's status, error code, run id and charged cost
    read RUN_ID                 flora_get_run, flora_list_runs and flora_spend as this process answers them
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit


async def main(argv: list[str]) -> dict[str, Any]:
    async with Toolkit(Settings()) as kit:
        go = os.environ.get("FLORA_TEST_GO")
        while go and not Path(go).exists():
            await anyio.sleep(0.01)
        if argv[0] == "calls":
            count, tool, args = int(argv[1]), argv[2], json.loads(argv[3])
            results: list[dict[str, Any]] = []

            async def one(n: int) -> None:
                result = await kit.call(tool, {**args, "content": f"{args.get('content', '')}-{os.getpid()}-{n}"})
                results.append({"status": result.status, "error_code": result.error_code, "run_id": result.run_id,
                                "charged_cost": result.charged_cost})

            async with anyio.create_task_group() as tg:
                for n in range(count):
                    tg.start_soon(one, n)
            return {"results": results, "spend": await kit.runs.spend()}
        run_id = argv[1]
        got = await kit.call("flora_get_run", {"run_id": run_id})
        listed = await kit.call("flora_list_runs", {})
        return {"get_run": {"status": got.status, "run_id": got.run_id, "outputs": [o.url for o in got.outputs],
                            "charged_cost": got.charged_cost},
                "list_runs": [r["run_id"] for r in (listed.data or {}).get("runs", [])],
                "spend": await kit.runs.spend(),
                "entry": (await kit.journal.get(kit.account, run_id) or None) and
                (await kit.journal.get(kit.account, run_id)).as_dict()}  # type: ignore[union-attr]


if __name__ == "__main__":
    print(json.dumps(anyio.run(main, sys.argv[1:])))  # noqa: T201 - the test reads this line
