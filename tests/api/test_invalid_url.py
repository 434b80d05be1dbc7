"""A URL httpx cannot request (`httpx.InvalidURL`: a control character, over 64 KB, a bad port) is a FloraError.

flora_mcp/api turns every HTTP failure into one (errors.py `map_transport_errors`): an `InvalidURLError`, a
connection error of a request that never left (`maybe_sent` False), never retried. Through the toolkit it is a
clear error result, not `internal_error` with a traceback in the log. Against the real sandbox on loopback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from flora_mcp.api.client import FloraClient
from flora_mcp.api.errors import APIConnectionError, InvalidURLError, map_transport_errors
from flora_mcp.api.retry import RetryPolicy
from flora_mcp.core.runs import account_id
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from flora_mcp.store import open_store
from tests.support import TEST_KEY, settings_for


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/runs/run_\x01x", "/runs/" + "r" * 70_000], ids=["control-character", "too-long"])
async def test_a_url_httpx_refuses_is_an_invalid_url_error_sent_nowhere(sandbox: Sandbox, path: str) -> None:
    async with FloraClient(api_key=TEST_KEY, base_url=sandbox.base_url, retry=RetryPolicy(max_retries=3)) as client:
        with pytest.raises(InvalidURLError) as raised:
            await client.get_run("run_\x01x", poll_url=sandbox.base_url + path)
    error = raised.value
    assert isinstance(error, APIConnectionError) and error.code == "invalid_url"
    assert not error.maybe_sent and not error.outcome_unknown
    assert "not a valid URL" in error.message and error.endpoint == "GET poll_url"
    assert sandbox.requests == []  # never sent, and not retried


def test_the_mapping_is_the_one_place_httpx_errors_become_flora_errors() -> None:
    import httpx

    with pytest.raises(InvalidURLError), map_transport_errors("GET /x"):
        httpx.URL("http://[::1/x")


@pytest.mark.anyio
async def test_flora_get_run_on_such_a_url_says_so_and_logs_no_traceback(
        sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A journal row whose poll URL (as FLORA gave it) cannot be requested."""
    path = str(tmp_path / "runs.sqlite3")
    journal = open_store(path)
    await journal.open()
    await journal.record(idempotency_key="idem_1", account=account_id(sandbox.base_url, TEST_KEY),
                         tool="qr-code-generator", technique_id="tech_x", technique_slug="qr-code-generator",
                         technique_name="QR", inputs={}, run_cost=0.01)
    await journal.update("idem_1", run_id="run_bad", status="running",
                         poll_url=f"{sandbox.base_url}/runs/run_bad\x7f")
    await journal.aclose()
    caplog.set_level(logging.DEBUG, logger="flora_mcp")
    async with Toolkit(settings_for(sandbox, journal=path)) as kit:
        result = await kit.call("flora_get_run", {"run_id": "run_bad"})
    assert result.status == "error" and result.error_code == "invalid_url", result.summary()
    assert result.run_id == "run_bad" and "not a valid URL" in (result.error_message or "")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
