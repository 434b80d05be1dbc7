"""A FLORA key that is not `sk_`-shaped: only the redaction of registered secrets can hide it, never the key pattern.

Every other test uses `TEST_KEY` (`sk_live_...`), which the key pattern hides even when nobody registered it, so a
Toolkit that forgot to register its key, or a `redact` that skipped registered secrets, passed them all. Here the
sandbox accepts a key of another shape, FLORA's error messages echo it back, and it must appear nowhere: not in
logs, results, the MCP text, the journal, nor a real server's stdout and stderr.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flora_mcp import logs
from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIStatusError
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.logs import KEY_PATTERN, REDACTED, redact
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from flora_mcp.sandbox.__main__ import parse_config
from tests.support import (
    ODD_KEY,
    TEST_KEY,
    echoing,
    mcp_client,
    sandbox_config,
    sandbox_env,
    settings_for,
    stdio_session,
)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(keys={ODD_KEY: Account()})) as box:
        yield box


@pytest.fixture(autouse=True)
def no_registered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start with no registered secret: whatever hides the key must have been registered during the test."""
    monkeypatch.setattr(logs, "_secrets", OrderedDict())


def test_the_key_is_not_sk_shaped_so_only_registration_can_hide_it() -> None:
    assert not KEY_PATTERN.search(ODD_KEY)
    assert redact(f"key {ODD_KEY}") == f"key {ODD_KEY}"  # nobody registered it (yet)


@pytest.mark.anyio
async def test_the_sandbox_accepts_a_key_of_any_shape_and_only_its_own_keys(sandbox: Sandbox) -> None:
    assert sandbox.api_key == ODD_KEY
    async with httpx.AsyncClient(base_url=sandbox.base_url, trust_env=False) as http:
        ours = await http.get("/techniques", headers={"Authorization": f"Bearer {ODD_KEY}"})
        other = await http.get("/techniques", headers={"Authorization": f"Bearer {TEST_KEY}"})
    assert ours.status_code == 200 and ours.json()["techniques"]
    assert other.status_code == 401


def test_the_sandbox_command_takes_a_key_of_any_shape() -> None:
    config = parse_config(["--key", ODD_KEY, "--key", "another-key-of-mine"])
    assert list(config.keys) == [ODD_KEY, "another-key-of-mine"]


def test_the_sandbox_command_serves_with_a_key_of_any_shape() -> None:
    with subprocess.Popen([sys.executable, "-m", "flora_mcp.sandbox", "--key", ODD_KEY, "--delay", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert proc.stdout.readline().strip() == f"API key: {ODD_KEY}"
            with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as http:
                assert http.get("/workspaces", headers={"Authorization": f"Bearer {ODD_KEY}"}).status_code == 200
                assert http.get("/workspaces", headers={"Authorization": "Bearer sk_sandbox_local"}).status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=15)


@pytest.mark.anyio
async def test_a_toolkit_registers_its_key_and_it_reaches_no_log_result_or_journal(
        sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = tmp_path / "runs.sqlite3"
    caplog.set_level(logging.DEBUG)
    async with Toolkit(settings_for(sandbox, api_key=ODD_KEY, journal=str(journal), max_retries=0)) as kit:
        # Registered by the Toolkit itself: any text bound for a log, an error or a result loses it.
        assert redact(f"Bearer {ODD_KEY}") == f"Bearer {REDACTED}"
        logging.getLogger("flora_mcp.core.runs").warning("a line that carries %s", ODD_KEY)
        done = await kit.call("qr-code-generator", {"content": "odd key"})
        sandbox.faults.inject("create_technique_run", "status", status=403, message=echoing(ODD_KEY))
        refused = await kit.call("qr-code-generator", {"content": "refused"})
        sandbox.faults.inject("create_technique_run", "status", status=500, message=echoing(ODD_KEY))
        unknown = await kit.call("qr-code-generator", {"content": "unknown"})
        async with mcp_client(kit) as client:
            sandbox.faults.inject("create_technique_run", "status", status=401, message=echoing(ODD_KEY))
            over_mcp = await client.call_tool("qr-code-generator", {"content": "over mcp"})
            listed = await client.call_tool("flora_list_runs", {})
    assert done.status == "completed"
    assert refused.is_error and unknown.is_error and over_mcp.is_error
    # The echoed messages did arrive, redacted: the faults were met, and said what they said.
    assert refused.error_message is not None and "is not allowed to run this technique" in refused.error_message
    texts = [done.summary(), refused.summary(), unknown.summary(),
             *(json.dumps(r.structured()) for r in (done, refused, unknown)),
             over_mcp.model_dump_json(), listed.model_dump_json()]
    assert all(ODD_KEY not in text for text in texts)
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any(f"a line that carries {REDACTED}" in line for line in logged)
    assert any(r.name.startswith("httpx") for r in caplog.records)  # DEBUG was on for the libraries too
    assert all(ODD_KEY not in line for line in logged)
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT * FROM runs").fetchall()
    assert len(rows) >= 3 and ODD_KEY not in repr(rows)
    assert ODD_KEY.encode() not in journal.read_bytes()


@pytest.mark.anyio
async def test_a_server_process_with_such_a_key_leaks_it_nowhere(sandbox: Sandbox) -> None:
    env = sandbox_env(sandbox, FLORA_API_KEY=ODD_KEY, FLORA_LOG_LEVEL="DEBUG", FLORA_POLL_INTERVAL="0.05",
                      FLORA_MAX_RETRIES="0")
    seen: list[str] = []
    async with stdio_session([], env) as (session, errlog):
        seen.append((await session.list_tools()).model_dump_json())
        seen.append((await session.call_tool("qr-code-generator", {"content": "x"})).model_dump_json())
        sandbox.faults.inject("create_technique_run", "status", status=401, message=echoing(ODD_KEY))
        seen.append((await session.call_tool("qr-code-generator", {"content": "y"})).model_dump_json())
        sandbox.faults.inject("get_technique_run", "status", status=502, message=echoing(ODD_KEY), count=5)
        seen.append((await session.call_tool("qr-code-generator", {"content": "z"})).model_dump_json())
        seen.append((await session.call_tool("flora_list_runs", {})).model_dump_json())
        errlog.seek(0)
        seen.append(errlog.read())
    assert '"completed"' in seen[1] and "is not allowed to run this technique" in seen[2]
    assert "HTTP Request" in seen[-1]  # DEBUG logging was on, and went to stderr
    assert [i for i, text in enumerate(seen) if ODD_KEY in text] == []


@pytest.mark.anyio
@pytest.mark.parametrize("status", [401, 403, 500, 502, 503])
async def test_flora_s_errors_raised_to_a_library_caller_hide_the_key(sandbox: Sandbox, status: int) -> None:
    """FloraClient is public: its exceptions are what a library user prints. A 5xx echoing the key is one too."""
    sandbox.faults.inject("list_techniques", "status", status=status, message=echoing(ODD_KEY), count=10)
    async with FloraClient(api_key=ODD_KEY, base_url=sandbox.base_url, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(APIStatusError) as raised:
            await client.list_techniques()
    error = raised.value
    assert error.status_code == status and "is not allowed to run this technique" in error.message
    assert ODD_KEY not in error.message + str(error) + repr(error) + repr(error.args)
