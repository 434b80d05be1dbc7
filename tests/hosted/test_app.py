"""The hosted app (`_app`) over real uvicorn on loopback: both MCP transports end to end, the guard (Host and Origin,
then credentials) on every route, health, draining, and stateless replicas, with the sandbox as FLORA.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import SecretStr

from flora_mcp.hosted import AuthPolicy, HostedOptions, HostedServer, bind
from flora_mcp.sandbox import Sandbox, serve_sandbox
from tests.hosted.hosted_support import (
    INITIALIZE,
    MCP_HEADERS,
    TOKEN,
    bearer,
    data_of,
    hosted,
    mcp_session,
    raw_initialize,
    token_settings,
)
from tests.support import sandbox_config, settings_for

# Both transports, end to end ------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_client_lists_tools_and_runs_a_technique_with_progress(sandbox: Sandbox, transport: str) -> None:
    async with hosted(token_settings(sandbox)) as server, \
            mcp_session(server, bearer(TOKEN), transport) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"qr-code-generator", "cctv-cam", "flora_get_run"} <= names
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        result = await session.call_tool("qr-code-generator", {"content": f"over {transport}"},
                                         progress_callback=on_progress)
        data = data_of(result)
        assert result.is_error is False and data["status"] == "completed"
        assert data["outputs"][0]["url"].startswith("http://127.0.0.1:")
        assert progress and progress[-1] == 100.0


@pytest.mark.anyio
async def test_a_2026_client_reaches_the_same_tools_through_the_same_guard(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox)) as server, \
            create_mcp_http_client(headers=bearer(TOKEN)) as http, \
            Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client:
        assert client.protocol_version not in (None, "2025-06-18", "2025-11-25")
        assert "qr-code-generator" in {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("qr-code-generator", {"content": "modern"})
        assert data_of(result)["status"] == "completed"


# Credentials ----------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "error"), [
    pytest.param({}, None, id="no-token"),
    pytest.param(bearer("tok_wrong_0123456789"), "invalid_token", id="wrong-token"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, None, id="not-bearer"),
    pytest.param(bearer(TOKEN + "x"), "invalid_token", id="token-prefix-is-not-enough"),
])
async def test_without_a_valid_token_every_mcp_route_answers_401(sandbox: Sandbox, headers: dict[str, str],
                                                                  error: str | None) -> None:
    async with hosted(token_settings(sandbox)) as server, httpx.AsyncClient(timeout=10) as http:
        answers = [
            await http.post(f"{server.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}),
            await http.get(f"{server.url}/sse", headers=headers),
            await http.post(f"{server.url}/messages/?session_id=0", json={}, headers=headers),
        ]
        for answer in answers:
            assert answer.status_code == 401
            challenge = answer.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="flora-mcp"')
            assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
            assert TOKEN not in answer.text
        ok = await raw_initialize(server, bearer(TOKEN))
        assert ok.status_code == 200


@pytest.mark.anyio
async def test_a_session_opened_with_one_token_cannot_be_used_with_another(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox)) as server, httpx.AsyncClient(timeout=10) as http:
        opened = await raw_initialize(server, bearer(TOKEN))
        session_id = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        hijack = await http.post(f"{server.url}/mcp", json=listing, headers={
            **MCP_HEADERS, **bearer("other-token-abcdef"), "mcp-session-id": session_id,
            "mcp-protocol-version": "2025-06-18"})
        assert hijack.status_code == 404


# Host and Origin ------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_foreign_origin_is_403_and_foreign_host_is_421_on_both_transports(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox)) as server, httpx.AsyncClient(timeout=10) as http:
        auth = bearer(TOKEN)
        evil_origin = {**auth, "Origin": "http://evil.example"}
        evil_host = {**auth, "Host": "evil.example"}
        assert (await raw_initialize(server, evil_origin)).status_code == 403
        assert (await raw_initialize(server, evil_host)).status_code == 421
        assert (await http.get(f"{server.url}/sse", headers=evil_origin)).status_code == 403
        assert (await http.get(f"{server.url}/sse", headers=evil_host)).status_code == 421
        # Checked before credentials: a rebinding page learns nothing about the auth.
        assert (await raw_initialize(server, {"Origin": "http://evil.example"})).status_code == 403
        local_origin = {**auth, "Origin": f"http://localhost:{server.port}", "Host": f"localhost:{server.port}"}
        assert (await raw_initialize(server, local_origin)).status_code == 200


@pytest.mark.anyio
async def test_allowed_host_and_origin_flags_admit_a_public_hostname(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox), allowed_hosts=("mcp.example.com",),
                      allowed_origins=("https://app.example.com",)) as server:
        public = {**bearer(TOKEN), "Host": "mcp.example.com", "Origin": "https://app.example.com"}
        assert (await raw_initialize(server, public)).status_code == 200
        assert (await raw_initialize(server, {**public, "Host": "mcp.example.com:8443"})).status_code == 200
        assert (await raw_initialize(server, {**public, "Host": "api.example.com"})).status_code == 421


# Health and draining --------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_healthz_answers_at_once_and_readyz_once_the_catalog_is_loaded() -> None:
    async with serve_sandbox(sandbox_config(latency=0.3)) as box:
        settings = token_settings(box)
        opts = HostedOptions(host="127.0.0.1", port=0)
        server = HostedServer(settings, opts, AuthPolicy.from_settings(settings, per_user_keys=False),
                              bind("127.0.0.1", 0))
        async with anyio.create_task_group() as tg, httpx.AsyncClient(timeout=10) as http:
            tg.start_soon(server.serve)
            await server.started.wait()
            # Probes come with the pod's IP as Host and no credentials: health routes need neither.
            probe = {"Host": "10.1.2.3:8000"}
            assert (await http.get(f"{server.url}/healthz", headers=probe)).status_code == 200
            loading = await http.get(f"{server.url}/readyz", headers=probe)
            assert loading.status_code == 503 and loading.json()["status"] == "loading_catalog"
            with anyio.fail_after(15):
                while (await http.get(f"{server.url}/readyz")).status_code != 200:
                    await anyio.sleep(0.05)
            await server.shutdown()


@pytest.mark.anyio
async def test_while_draining_new_sessions_get_503_and_open_sessions_carry_on(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox)) as server, mcp_session(server, bearer(TOKEN)) as session, \
            httpx.AsyncClient(timeout=10) as http:
        server.hosted.draining = True
        refused = await raw_initialize(server, bearer(TOKEN))
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert (await http.get(f"{server.url}/sse", headers=bearer(TOKEN))).status_code == 503
        assert (await http.get(f"{server.url}/readyz")).status_code == 503
        assert "qr-code-generator" in {t.name for t in (await session.list_tools()).tools}


# Stateless replicas ---------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_started_on_one_stateless_replica_is_resumed_on_another() -> None:
    async with serve_sandbox(sandbox_config(technique_delays={"qr-code-generator": 1.5})) as box:
        # Each replica has its own journal, as separate processes would: only FLORA knows the run. One token, so one
        # principal: with several on one key a run is resumed only from the journal that recorded it
        # (tests/hosted/test_principals.py).
        replica_a = settings_for(box, mcp_tokens=SecretStr(TOKEN), max_wait=0.3)
        replica_b = settings_for(box, mcp_tokens=SecretStr(TOKEN), max_wait=20.0)
        async with hosted(replica_a, stateless=True) as a, hosted(replica_b, stateless=True) as b:
            async with mcp_session(a, bearer(TOKEN)) as on_a:
                started = data_of(await on_a.call_tool("qr-code-generator", {"content": "replicas"}))
            assert started["status"] in ("pending", "running") and started["run_id"]
            async with mcp_session(b, bearer(TOKEN)) as on_b:
                resumed = data_of(await on_b.call_tool("flora_get_run", {"run_id": started["run_id"]}))
            assert resumed["status"] == "completed" and resumed["outputs"]
            assert len(box.runs) == 1
