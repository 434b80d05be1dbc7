"""Every string that leaves the process passes the same redaction as the logs, on every surface it leaves by.

FLORA's words reach flora-mcp in two ways: an error envelope (redacted as it becomes an exception, in api/errors.py)
and a run that FLORA reports failed, in its own words (`error_message` of the run object). The second is what these
tests use (the sandbox's `run_failed` fault), echoing the key whole and truncated, with a key that is not `sk_`-shaped
so that only the registered-secret redaction can hide it. The surfaces: the result's text and `structuredContent`,
MCP's text, `flora_list_runs`, the `flora://runs/...` and `flora://spend` resources, an MCP task's result and the task
table, the run journal, and the human CLI's output, piped and as JSON.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import mcp.types as types
import pytest

from flora_mcp import logs
from flora_mcp.core.runs import account_id
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from flora_mcp.store import open_store
from tests.support import (
    ODD_KEY,
    StdioPeer,
    echoing,
    mcp_client,
    sandbox_config,
    sandbox_env,
    server_env,
    settings_for,
)

TRUNCATED = ODD_KEY[: len(ODD_KEY) // 2 + 1]
"""More than half the key, as a server that shortens what it echoes (`flora-acct-7f3K...`) gives it."""
LEAKS = (ODD_KEY, TRUNCATED)
TOOL = "qr-code-generator"


def flora_says() -> str:
    """A failed run's message in FLORA's words, echoing the key whole and cut short."""
    return f"{echoing(ODD_KEY)}; the token {TRUNCATED}... was refused by the provider"


def assert_clean(*texts: str) -> None:
    for i, text in enumerate(texts):
        assert all(leak not in text for leak in LEAKS), (i, text[:2000])


@pytest.fixture(autouse=True)
def no_registered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever hides the key must have been registered during the test, by the code under test."""
    monkeypatch.setattr(logs, "_secrets", OrderedDict())


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(keys={ODD_KEY: Account()})) as box:
        yield box


def fail_next_run(box: Sandbox) -> None:
    box.faults.inject("get_technique_run", "run_failed", code="provider_error", message=flora_says())


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.anyio
async def test_a_failed_run_in_flora_s_words_reaches_no_result_resource_or_journal(sandbox: Sandbox,
                                                                                    tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite3"
    async with Toolkit(settings_for(sandbox, api_key=ODD_KEY, journal=str(journal), preview=False)) as kit:
        fail_next_run(sandbox)
        failed = await kit.call(TOOL, {"content": "library"})
        async with mcp_client(kit) as client:
            fail_next_run(sandbox)
            over_mcp = await client.call_tool(TOOL, {"content": "mcp"})
            listed = await client.call_tool("flora_list_runs", {})
            resources = await client.list_resources()
            run_uri = f"flora://runs/{failed.run_id}"
            run_resource = await client.read_resource(run_uri)
            spend_resource = await client.read_resource("flora://spend")
    # The fault was met, and its words arrived, without the key.
    assert failed.status == "failed" and failed.error_code == "provider_error", failed.summary()
    assert over_mcp.is_error and (over_mcp.structured_content or {})["status"] == "failed"
    assert "was refused by the provider" in (failed.error_message or "")
    assert "was refused by the provider" in text_of(over_mcp)
    assert run_uri in {str(r.uri) for r in resources.resources}
    assert_clean(
        failed.summary(), json.dumps(failed.structured()), failed.error_message or "", failed.model_dump_json(),
        text_of(over_mcp), json.dumps(over_mcp.structured_content), text_of(listed),
        json.dumps(listed.structured_content), resources.model_dump_json(), run_resource.model_dump_json(),
        spend_resource.model_dump_json())
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT * FROM runs").fetchall()
    assert len(rows) == 2 and all("was refused by the provider" in repr(row) for row in rows)
    assert_clean(repr(rows), journal.read_bytes().decode("utf-8", "replace"))


@pytest.mark.anyio
async def test_a_journal_row_written_before_its_key_was_known_is_redacted_as_it_leaves(sandbox: Sandbox,
                                                                                        tmp_path: Path) -> None:
    """A row an older flora-mcp wrote (its text not redacted): resources and flora_list_runs still hide the key."""
    path = tmp_path / "runs.sqlite3"
    old = open_store(str(path))
    await old.open()
    await old.record(idempotency_key="idem_old", account=account_id(sandbox.base_url, ODD_KEY), tool=TOOL,
                     technique_id="tech_old", technique_slug=TOOL, technique_name="QR Code Generator", inputs={},
                     run_cost=0.01)
    await old.update("idem_old", run_id="run_old", status="failed", error_code="provider_error",
                     error_message=flora_says())
    await old.aclose()
    assert ODD_KEY.encode() in path.read_bytes()  # as the older version left it
    async with Toolkit(settings_for(sandbox, api_key=ODD_KEY, journal=str(path))) as kit, \
            mcp_client(kit) as client:
        resource = await client.read_resource("flora://runs/run_old")
        listed = await client.call_tool("flora_list_runs", {})
        library = await kit.call("flora_list_runs", {})
    assert "was refused by the provider" in resource.model_dump_json()
    assert_clean(resource.model_dump_json())
    assert "run_old" in text_of(listed)
    assert_clean(text_of(listed), json.dumps(listed.structured_content), library.summary(),
                 json.dumps(library.structured()), json.dumps(library.data))


@pytest.mark.anyio
async def test_an_mcp_task_s_result_and_its_stored_row_hide_the_key(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite3"
    env = sandbox_env(sandbox, FLORA_API_KEY=ODD_KEY, FLORA_POLL_INTERVAL="0.05", FLORA_LOG_LEVEL="WARNING",
                      FLORA_JOURNAL=str(journal), FLORA_PREVIEW="off")
    async with await anyio.open_process([sys.executable, "-m", "flora_mcp"], env=env) as process:
        peer = StdioPeer(process)
        await peer.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                          "clientInfo": {"name": "redaction-test", "version": "1"}})
        await peer.send({"method": "notifications/initialized"})
        fail_next_run(sandbox)
        created = await peer.request("tools/call", {"name": TOOL, "arguments": {"content": "task"},
                                                    "task": {"ttl": 60_000}})
        task_id = created["task"]["taskId"]
        result = await peer.request("tasks/result", {"taskId": task_id})
        state = await peer.request("tasks/get", {"taskId": task_id})
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.fail_after(10):
            await process.wait()
    assert result["isError"] is True and result["structuredContent"]["status"] == "failed"
    assert "was refused by the provider" in json.dumps(result)
    with sqlite3.connect(journal) as db:
        stored = db.execute("SELECT * FROM mcp_tasks").fetchall()
    assert len(stored) == 1 and "was refused by the provider" in repr(stored)
    assert_clean(json.dumps(result), json.dumps(state), repr(stored))


async def cli_run(sandbox: Sandbox, *args: str) -> tuple[int, str, str]:
    env = server_env(FLORA_LOG_LEVEL="WARNING", FLORA_POLL_INTERVAL="0.05", FLORA_API_KEY=ODD_KEY,
                     FLORA_PREVIEW="off")
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "flora_mcp", "run", TOOL, "content=cli", *args,
                                        "--base-url", sandbox.base_url], env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.anyio
@pytest.mark.parametrize("args", [[], ["--json"]], ids=["human", "json"])
async def test_the_human_cli_prints_no_key(sandbox: Sandbox, args: list[str]) -> None:
    fail_next_run(sandbox)
    code, out, err = await cli_run(sandbox, *args)
    assert code == 1 and "was refused by the provider" in out + err, out + err
    assert_clean(out, err)


def test_a_truncated_bearer_token_is_hidden_in_any_text() -> None:
    """What redacts every surface above, on its own: registered secrets whole or cut short, and bearer credentials."""
    token = "hosted-token-Zq81mW0pLx4vR7"
    logs.add_secret(token)
    shown = [logs.redact(text) for text in (
        f"Authorization: Bearer {token}", f"token {token[:len(token) // 2 + 1]}... rejected",
        f"x{token[:-3]}.y", "Authorization: Bearer unregistered.Token_123", "Bearer abc")]
    assert shown == [f"Authorization: Bearer {logs.REDACTED}", f"token {logs.REDACTED}... rejected",
                     f"x{logs.REDACTED}.y", f"Authorization: Bearer {logs.REDACTED}", "Bearer abc"]
    # A short start of a secret is not taken for it, nor another token that merely shares its start.
    assert logs.redact(f"starts {token[:6]}") == f"starts {token[:6]}"
    other = token[:len(token) // 2 + 2] + "Other0Token"
    assert logs.redact(f"other {other}") == f"other {other}"


def test_the_links_beside_a_result_lose_the_key() -> None:
    from flora_mcp.core.results import ToolResult

    logs.add_secret(ODD_KEY)
    link = types.ResourceLink(type="resource_link", uri=f"https://cdn.example/{ODD_KEY}.png", name=ODD_KEY,
                              description=f"output for {TRUNCATED}")
    answer = ToolResult(tool=TOOL, status="completed", run_id="run_1").to_call_tool_result([link])
    assert len(answer.content) == 2 and "cdn.example" in answer.content[1].model_dump_json()
    assert_clean(answer.model_dump_json())
