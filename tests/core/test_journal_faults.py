"""The journal under faults: private on disk, a clear line when it cannot be opened, memory when it cannot be written.

A journal that cannot be opened (corrupt, read-only, a folder) stops start-up with one line naming the file and the
fix, never a traceback, in every serving mode. A journal whose writes start failing mid-call (a full disk) never hides
a paid run: the call returns its run id and outputs, one warning says the journal now lives in memory, and the server
goes on serving with every row it had.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from flora_mcp.store import JournalError, SQLiteStore
from tests.support import TEST_KEY, FullDisk, server_env, settings_for

TECHNIQUE = "find-and-replace-text"
ARGS = {"text": "hello world", "find": "world", "replace": "FLORA"}


async def record(journal: SQLiteStore, key: str) -> None:
    await journal.record(idempotency_key=key, account="acct", tool="cctv-cam", technique_id="tech_1",
                   technique_slug="cctv-cam", technique_name="CCTV Cam", inputs={"input_image": "https://x"},
                   run_cost=0.05)


# Item 8: private on disk ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_journal_is_created_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "data" / "flora-mcp" / "runs.sqlite3"
    old = os.umask(0o022)  # the usual umask, which would give 0644 files in 0755 folders
    try:
        journal = SQLiteStore(str(path))
        await record(journal, "k1")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    await journal.aclose()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert modes["runs.sqlite3"] == 0o600
    # SQLite's write-ahead log and shared memory hold the same rows: just as private.
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_an_existing_world_readable_journal_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    path = folder / "runs.sqlite3"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    SQLiteStore(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # a folder flora-mcp did not make is left alone


# Item 10: a journal that cannot be opened -------------------------------------------------------------------------


def corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"this is not an SQLite database, it is a text file " * 100)
    return path


def directory(tmp_path: Path) -> Path:
    path = tmp_path / "a-folder.sqlite3"
    path.mkdir()
    return path


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain-file").write_text("x")
    return tmp_path / "plain-file" / "runs.sqlite3"


@pytest.mark.parametrize("make", [corrupt, directory, under_a_file])
def test_a_journal_that_cannot_be_opened_raises_one_line_naming_the_file_and_the_fix(
        tmp_path: Path, make: Any) -> None:
    path = make(tmp_path)
    with pytest.raises(JournalError) as caught:
        SQLiteStore(str(path))
    message = caught.value.message
    assert str(path) in message and "FLORA_JOURNAL" in message and "\n" not in message


def failure_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """What the server said of its failure: its `flora-mcp:` lines, and any traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("flora-mcp:")]


def run_server(args: list[str], env: dict[str, str], *, prefix: list[str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "flora_mcp", *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


SERVING_MODES = {
    "stdio": [],
    "sandbox-stdio": ["--sandbox"],
    "sandbox-http": ["--sandbox", "--transport", "http", "--port", "0"],
    "http": ["--transport", "http", "--port", "0"],
}


@pytest.mark.parametrize("mode", list(SERVING_MODES))
def test_a_corrupt_journal_stops_every_serving_mode_with_one_line_and_no_traceback(tmp_path: Path,
                                                                                   mode: str) -> None:
    path = corrupt(tmp_path)
    env = server_env(FLORA_JOURNAL=str(path), FLORA_API_KEY=TEST_KEY, FLORA_BASE_URL="http://127.0.0.1:9")
    done = run_server(SERVING_MODES[mode], env)
    assert done.returncode == 1, done.stderr
    [line] = failure_lines(done)
    assert str(path) in line and "FLORA_JOURNAL" in line
    assert done.stdout == ""


def test_a_read_only_journal_stops_start_up_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "read-only.sqlite3"
    SQLiteStore(str(path)).close()
    path.chmod(0o400)
    env = server_env(FLORA_JOURNAL=str(path))
    # Root writes through any mode bits; in a user namespace of its own it is the file's owner, without that power.
    prefix = ["unshare", "--user"] if os.geteuid() == 0 else []
    done = run_server(["--sandbox"], env, prefix=prefix)
    assert done.returncode == 1, done.stderr
    [line] = failure_lines(done)
    assert str(path) in line and "FLORA_JOURNAL" in line


# Item 1: writes that start failing mid-call -----------------------------------------------------------------------


ERRORS = {
    "disk-full": sqlite3.OperationalError("database or disk is full"),
    "io-error": sqlite3.OperationalError("disk I/O error"),
    "os-error": OSError(28, "No space left on device"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("error", list(ERRORS))
@pytest.mark.parametrize("allowed", [1, 0], ids=["fails-after-the-create-left", "fails-before-the-create"])
async def test_a_journal_write_that_fails_never_hides_the_run(sandbox: Sandbox, tmp_path: Path, error: str,
                                                              allowed: int, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "runs.sqlite3"
    async with Toolkit(settings_for(sandbox, journal=str(path))) as kit:
        disk = FullDisk(kit.journal._db, allowed=allowed, error=ERRORS[error])
        kit.journal._db = disk  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING, logger="flora_mcp"):
            first = await kit.call(TECHNIQUE, ARGS)
            second = await kit.call(TECHNIQUE, {**ARGS, "text": "second world"})
            listed = await kit.call("flora_list_runs", {})
    assert disk.failed >= 1, "the disk never filled"
    [run1, run2] = sandbox.runs
    assert first.status == "completed" and first.run_id == run1.run_id and first.outputs, first.summary()
    assert first.charged_cost == run1.charged_cost
    assert second.status == "completed" and second.run_id == run2.run_id
    # The journal went on in memory, with the row written before the disk filled and those after.
    assert listed.data is not None
    assert [r["run_id"] for r in listed.data["runs"]] == [run2.run_id, run1.run_id]
    assert [r["status"] for r in listed.data["runs"]] == ["completed", "completed"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "journal" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert str(path) in warnings[0].getMessage() and "memory" in warnings[0].getMessage()
