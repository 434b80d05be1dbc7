"""A real disk filling up under a real server: the journal on a tiny filesystem that fills once a create has left.

The server (`python -m flora_mcp` over stdio) runs in mount and user namespaces of its own, with its journal on a
tmpfs of 1 MB only it sees. The moment the sandbox receives the create request, the test fills that tmpfs through
`/proc/<pid>/root`: FLORA makes and charges the run, and the journal's next write finds no space. The call must still
answer with the run id, outputs and cost; the journal goes on in memory after one warning; the same process serves
the next call and lists both runs.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from flora_mcp.sandbox import Sandbox
from flora_mcp.sandbox._faults import RecordedRequest
from tests.support import processes_with, sandbox_env, stdio_session

QR = "qr-code-generator"
TMPFS = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"']


class FillOnCreate(list[RecordedRequest]):
    """The sandbox's request log, filling the server's tmpfs when the first create request arrives."""

    def __init__(self, folder: Path, marker: str) -> None:
        super().__init__()
        self.folder, self.marker = folder, marker
        self.filled = 0

    def append(self, record: RecordedRequest) -> None:
        if record.route == "create_technique_run" and not self.filled:
            [pid] = processes_with(self.marker)
            # The server's own view of the folder: its tmpfs, not the empty folder this process sees.
            with open(f"/proc/{pid}/root{self.folder}/filler", "wb", buffering=0) as filler:
                try:
                    while True:
                        self.filled += filler.write(b"\0" * 4096) or 0
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        super().append(record)


def structured(result: Any) -> dict[str, Any]:
    data = result.structured_content
    assert isinstance(data, dict), result
    return data


@pytest.mark.anyio
async def test_a_disk_that_fills_after_the_create_left_keeps_the_run_and_the_server(sandbox: Sandbox,
                                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "tiny-disk"
    folder.mkdir()
    journal = folder / "runs.sqlite3"
    log = FillOnCreate(folder, str(journal))
    sandbox.state.requests = log
    env = sandbox_env(sandbox, FLORA_JOURNAL=str(journal), FLORA_POLL_INTERVAL="0.05")
    async with stdio_session([], env, prefix=[*TMPFS, str(folder)]) as (session, errlog):
        paid = structured(await session.call_tool(QR, {"content": "paid for"}))
        again = structured(await session.call_tool(QR, {"content": "on a full disk"}))
        listed = structured(await session.call_tool("flora_list_runs", {}))
        errlog.seek(0)
        stderr = errlog.read()
    assert log.filled > 0, "the tmpfs never filled"
    assert not (folder / "filler").exists(), "the journal was not on the server's own tmpfs"
    first, second = sandbox.runs
    assert (paid["status"], paid["run_id"], paid["charged_cost"]) == ("completed", first.run_id, 0.01)
    assert paid["outputs"], paid
    assert (again["status"], again["run_id"]) == ("completed", second.run_id)
    rows = listed["data"]["runs"]
    assert [(r["run_id"], r["status"]) for r in rows] == [(second.run_id, "completed"), (first.run_id, "completed")]
    warnings = [line for line in stderr.splitlines() if "in memory" in line]
    assert len(warnings) == 1 and str(journal) in warnings[0], stderr
    assert "Traceback" not in stderr, stderr
    assert json.dumps(paid).count(first.run_id) >= 1
