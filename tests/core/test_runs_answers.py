"""What a call answers and logs once its run exists, when what follows the create goes wrong: a poll FLORA refuses,
a journal that cannot take the run's events. The run id is never lost, and the log says which run it was."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from flora_mcp.core.tool_names import GET_RUN
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import settings_for

pytestmark = pytest.mark.anyio

TECHNIQUE = "qr-code-generator"


async def test_a_poll_refused_for_good_answers_with_the_run_id_and_how_to_check_on_it(sandbox: Sandbox) -> None:
    async with Toolkit(settings_for(sandbox, max_retries=0)) as kit:
        sandbox.faults.inject("get_technique_run", "status", status=401, code="unauthorized", count=100)
        result = await kit.call(TECHNIQUE, {"content": "poll refused"})
    [run] = sandbox.runs
    assert (result.status, result.error_code, result.run_id) == ("error", "unauthorized", run.run_id)
    assert result.next_step == (f'The run exists and may be charged: call {GET_RUN} with run_id "{run.run_id}" to '
                                "check on it instead of calling the tool again.")


async def test_the_log_says_which_run_of_which_tool_was_submitted(sandbox: Sandbox,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    async with Toolkit(settings_for(sandbox)) as kit:
        with caplog.at_level(logging.INFO, logger="flora_mcp.core.runs"):
            result = await kit.call(TECHNIQUE, {"content": "logged"})
    assert result.status == "completed"
    submitted = [r.getMessage() for r in caplog.records if r.name == "flora_mcp.core.runs" and "submitted" in
                 r.getMessage()]
    assert submitted == [f"run {result.run_id} of {TECHNIQUE} submitted"]


async def test_journal_writes_failing_after_the_create_name_the_call_and_the_run(
        sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with Toolkit(settings_for(sandbox, journal=str(tmp_path / "runs.sqlite3"))) as kit:
        async def write_run(*args: Any, **kwargs: Any) -> None:
            raise OSError(28, "No space left on device")

        kit.journal.write_run = write_run  # type: ignore[method-assign]
        with caplog.at_level(logging.DEBUG, logger="flora_mcp.core.journal"):
            result = await kit.call(TECHNIQUE, {"content": "journal full"})
    [run] = sandbox.runs
    [create] = sandbox.requests_for("create_technique_run")
    assert result.status == "completed" and result.run_id == run.run_id and result.outputs
    lines = [r.getMessage() for r in caplog.records if r.name == "flora_mcp.core.journal"]
    assert any(f"for the run id of run {run.run_id}:" in line for line in lines), lines
    assert any(f"for the outputs of run {run.run_id}:" in line for line in lines), lines
    assert create.idempotency_key and not any("None" in line for line in lines), lines
