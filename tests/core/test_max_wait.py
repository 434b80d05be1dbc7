"""FLORA_MAX_WAIT: 50 s by default (clients drop a call at about 60 s), after which a call returns `running` with the
run id, and `flora_get_run` picks the same run up. The waiting is tested with a shorter setting, read from the
environment by its documented name; the default is pinned on its own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.support import TEST_KEY, sandbox_config

DEFAULT_MAX_WAIT = 50.0
"""The documented default (README: "a call waits at most 50 s"): below the ~60 s after which clients give up."""
TECHNIQUE = "qr-code-generator"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any FLORA_* variable: defaults are the code's, not the user's."""
    for name in [n for n in os.environ if n.startswith("FLORA_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve_sandbox(sandbox_config(technique_delays={TECHNIQUE: 2.0})) as box:
        yield box


def settings(box: Sandbox, **values: Any) -> Settings:
    """Settings for the sandbox that leave max_wait to the environment or the default."""
    return Settings(api_key=TEST_KEY, base_url=box.base_url, journal=":memory:", poll_interval=0.05,
                    tools_mode="full", catalog_cache="off", **values)


def test_the_default_is_50_seconds(environment: pytest.MonkeyPatch) -> None:
    assert Settings().max_wait == DEFAULT_MAX_WAIT
    environment.setenv("FLORA_MAX_WAIT", "7.5")
    assert Settings().max_wait == 7.5  # and FLORA_MAX_WAIT is its name


@pytest.mark.anyio
async def test_the_agent_is_told_the_default_wait(environment: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    async with Toolkit(settings(sandbox)) as kit:
        assert kit.settings.max_wait == DEFAULT_MAX_WAIT
        [get_run] = [t for t in kit.tool_definitions() if t["name"] == "flora_get_run"]
    assert get_run["inputSchema"]["properties"]["wait_seconds"]["maximum"] == DEFAULT_MAX_WAIT


@pytest.mark.anyio
async def test_a_call_returns_running_with_the_run_id_after_max_wait(environment: pytest.MonkeyPatch,
                                                                     sandbox: Sandbox) -> None:
    environment.setenv("FLORA_MAX_WAIT", "0.3")
    async with Toolkit(settings(sandbox)) as kit:
        assert kit.settings.max_wait == 0.3
        result = await kit.call(TECHNIQUE, {"content": "longer than max_wait"})
        [run] = sandbox.runs
        assert not run.finished  # the call returned while the run went on
        assert result.status in ("running", "pending") and not result.is_error
        assert result.run_id == run.run_id and not result.outputs
        assert "flora_get_run" in (result.next_step or "") and run.run_id in result.summary()
        with anyio.fail_after(30):
            while (again := await kit.call("flora_get_run", {"run_id": run.run_id})).status != "completed":
                assert again.status in ("running", "pending"), again.summary()
    assert again.run_id == run.run_id and again.outputs
    assert len(sandbox.requests_for("create_technique_run")) == 1 and len(sandbox.runs) == 1
