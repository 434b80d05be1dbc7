"""One toolkit per FLORA key (`_pool`): with per-user keys each user sees only their own catalog, runs and journal;
a key FLORA refuses is a 401; idle toolkits beyond the bound are closed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from flora_mcp.config import Settings
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.hosted.hosted_support import bearer, data_of, hosted, mcp_session, raw_initialize
from tests.support import TEST_KEY, sandbox_config, settings_for

OTHER_KEY = "sk_live_OTHER0user0key0never0logged"


@asynccontextmanager
async def two_user_sandbox(**config: Any) -> AsyncIterator[Sandbox]:
    keys = {TEST_KEY: Account(techniques=["qr-code-generator", "split-text"]),
            OTHER_KEY: Account(techniques=["cctv-cam", "tone-generator"])}
    async with serve_sandbox(sandbox_config(keys=keys, **config)) as box:
        yield box


def per_user_settings(box: Sandbox, **overrides: Any) -> Settings:
    return settings_for(box, api_key=None, **overrides)


@pytest.mark.anyio
async def test_with_per_user_keys_each_user_sees_only_their_catalog_runs_and_journal() -> None:
    async with two_user_sandbox() as box, hosted(per_user_settings(box), per_user_keys=True) as server, \
            mcp_session(server, bearer(TEST_KEY)) as alice, \
            mcp_session(server, {"X-Flora-Api-Key": OTHER_KEY}, "sse") as bob:
        alice_tools = {t.name for t in (await alice.list_tools()).tools}
        bob_tools = {t.name for t in (await bob.list_tools()).tools}
        assert {"qr-code-generator", "split-text"} <= alice_tools and "cctv-cam" not in alice_tools
        assert {"cctv-cam", "tone-generator"} <= bob_tools and "qr-code-generator" not in bob_tools

        ran = data_of(await alice.call_tool("qr-code-generator", {"content": "alice only"}))
        run_id = ran["run_id"]
        assert ran["status"] == "completed" and run_id

        # Bob cannot run Alice's technique, resume her run, list it, or read it as a resource.
        denied = await bob.call_tool("qr-code-generator", {"content": "bob"})
        assert denied.is_error is True
        foreign = data_of(await bob.call_tool("flora_get_run", {"run_id": run_id}))
        assert foreign["status"] != "completed" and foreign.get("outputs", []) == []
        assert "not_found" in json.dumps(foreign)
        assert data_of(await bob.call_tool("flora_list_runs", {}))["data"]["count"] == 0
        assert all(run_id not in str(r.uri) for r in (await bob.list_resources()).resources)
        with pytest.raises(Exception, match="No run"):
            await bob.read_resource(f"flora://runs/{run_id}")

        # Alice still finds her own run everywhere.
        mine = data_of(await alice.call_tool("flora_get_run", {"run_id": run_id}))
        assert mine["status"] == "completed"
        assert any(run_id in str(r.uri) for r in (await alice.list_resources()).resources)
        assert run_id in (await alice.read_resource(f"flora://runs/{run_id}")).contents[0].text  # type: ignore[union-attr]
        assert len(server.pool) == 2


@pytest.mark.anyio
async def test_with_per_user_keys_a_key_flora_refuses_gets_401_not_an_empty_tool_list() -> None:
    async with two_user_sandbox() as box, hosted(per_user_settings(box), per_user_keys=True) as server:
        refused = await raw_initialize(server, bearer("sk_live_NOT0a0real0key0at0all"))
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
        assert len(server.pool) == 0
        missing = await raw_initialize(server, {})
        assert missing.status_code == 401
        assert (await raw_initialize(server, bearer(TEST_KEY))).status_code == 200
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{server.url}/readyz")).status_code == 200  # no catalog of its own to wait for


@pytest.mark.anyio
async def test_idle_per_user_toolkits_beyond_the_bound_are_closed() -> None:
    async with two_user_sandbox() as box, hosted(per_user_settings(box), per_user_keys=True) as server:
        server.pool.max_toolkits = 1
        for key in (TEST_KEY, OTHER_KEY, TEST_KEY):
            assert (await raw_initialize(server, bearer(key))).status_code == 200
            with anyio.fail_after(5):  # the lease ends just after the response is sent
                while len(server.pool) != 1:
                    await anyio.sleep(0.01)
            assert [t.settings.api_key_value() for t in server.pool.toolkits()] == [key]
