"""Hosted mode over real uvicorn on loopback: both HTTP transports, auth, Host/Origin checks, per-user keys,
replicas, readiness and graceful shutdown, with the sandbox as FLORA."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import SecretStr

from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.hosted import (
    DRAIN_TIMEOUT,
    AuthPolicy,
    HostedOptions,
    HostedServer,
    bind,
    is_loopback,
    transport_security,
)
from flora_mcp.hosted._auth import AuthFailure, Caller
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.support import TEST_KEY, sandbox_config, settings_for

TOKEN = "tok_hosted_test_0123456789"
OTHER_KEY = "sk_live_OTHER0user0key0never0logged"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}


# Helpers -------------------------------------------------------------------------------------------------------------


@asynccontextmanager
async def hosted(settings: Settings, **options: Any) -> AsyncIterator[HostedServer]:
    """A hosted server on a free loopback port for the block; drained and stopped after it."""
    opts = HostedOptions(host="127.0.0.1", port=0, **options)
    policy = AuthPolicy.from_settings(settings, per_user_keys=opts.per_user_keys)
    server = HostedServer(settings, opts, policy, bind("127.0.0.1", 0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.started.wait()
            while not server.pool.ready:
                await anyio.sleep(0.01)
        try:
            yield server
        finally:
            with anyio.fail_after(15):
                await server.shutdown()


@asynccontextmanager
async def mcp_session(server: HostedServer, headers: dict[str, str] | None = None,
                      transport: str = "http") -> AsyncIterator[ClientSession]:
    """An initialized MCP client session over streamable HTTP (/mcp) or legacy SSE (/sse)."""
    if transport == "sse":
        async with sse_client(f"{server.url}/sse", headers=headers) as (read, write), \
                ClientSession(read, write) as session:
            with anyio.fail_after(10):
                await session.initialize()
            yield session
        return
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        with anyio.fail_after(10):
            await session.initialize()
        yield session


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def token_settings(box: Sandbox, **overrides: Any) -> Settings:
    return settings_for(box, mcp_tokens=SecretStr(f"other-token-abcdef,{TOKEN}"), **overrides)


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def raw_initialize(server: HostedServer, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{server.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


def data_of(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)


# Both transports, end to end ----------------------------------------------------------------------------------------


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


# Auth ---------------------------------------------------------------------------------------------------------------


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


# Host and Origin ----------------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("mcp.example.com", False),
])
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_default_allow_lists_are_loopback_on_our_port_plus_the_flags() -> None:
    security = transport_security(HostedOptions(host="10.0.0.5", allowed_hosts=("mcp.example.com", "a.b:9000"),
                                                allowed_origins=("https://app.example.com/",)), 8123)
    assert {"127.0.0.1:8123", "localhost:8123", "[::1]:8123", "10.0.0.5:8123", "mcp.example.com",
            "mcp.example.com:*", "a.b:9000"} == set(security.allowed_hosts)
    assert "http://localhost:8123" in security.allowed_origins
    assert "https://app.example.com" in security.allowed_origins
    assert not any(o.endswith(":*") for o in security.allowed_origins)


@pytest.mark.parametrize(("headers", "expected"), [
    pytest.param({"authorization": f"Bearer {TEST_KEY}"}, "key", id="bearer-key"),
    pytest.param({"x-flora-api-key": TEST_KEY}, "key", id="header-key"),
    pytest.param({"x-flora-api-key": TEST_KEY, "authorization": "Bearer other"}, "key", id="header-wins"),
    pytest.param({}, None, id="nothing"),
    pytest.param({"x-flora-api-key": "bad\nkey"}, "invalid_token", id="malformed"),
])
def test_per_user_keys_come_from_either_header(headers: dict[str, str], expected: str | None) -> None:
    policy = AuthPolicy([], per_user_keys=True, base_url="http://flora")
    caller = policy.authenticate(headers)
    if expected == "key":
        assert isinstance(caller, Caller) and caller.flora_key == TEST_KEY
        assert TEST_KEY not in caller.principal and caller.principal.startswith("key:")
    else:
        assert isinstance(caller, AuthFailure) and caller.error == expected


def test_with_tokens_and_per_user_keys_the_token_admits_and_the_header_names_the_key() -> None:
    policy = AuthPolicy([TOKEN], per_user_keys=True, base_url="http://flora")
    assert isinstance(policy.authenticate({"authorization": f"Bearer {TEST_KEY}"}), AuthFailure)
    assert isinstance(policy.authenticate({"authorization": f"Bearer {TOKEN}"}), AuthFailure)
    caller = policy.authenticate({"authorization": f"Bearer {TOKEN}", "x-flora-api-key": TEST_KEY})
    assert isinstance(caller, Caller) and caller.flora_key == TEST_KEY and TOKEN not in caller.principal


# Health -------------------------------------------------------------------------------------------------------------


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


# Per-user keys ------------------------------------------------------------------------------------------------------


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
        with pytest.raises(Exception, match="no run"):
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


# Replicas -----------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_started_on_one_stateless_replica_is_resumed_on_another() -> None:
    async with serve_sandbox(sandbox_config(technique_delays={"qr-code-generator": 1.5})) as box:
        # Each replica has its own journal, as separate processes would: only FLORA knows the run.
        replica_a = token_settings(box, max_wait=0.3)
        replica_b = token_settings(box, max_wait=20.0)
        async with hosted(replica_a, stateless=True) as a, hosted(replica_b, stateless=True) as b:
            async with mcp_session(a, bearer(TOKEN)) as on_a:
                started = data_of(await on_a.call_tool("qr-code-generator", {"content": "replicas"}))
            assert started["status"] in ("pending", "running") and started["run_id"]
            async with mcp_session(b, bearer(TOKEN)) as on_b:
                resumed = data_of(await on_b.call_tool("flora_get_run", {"run_id": started["run_id"]}))
            assert resumed["status"] == "completed" and resumed["outputs"]
            assert len(box.runs) == 1


# Shutdown -----------------------------------------------------------------------------------------------------------


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


@pytest.mark.anyio
async def test_stop_waiting_hands_back_a_waiting_call_as_running_with_its_run_id(sandbox: Sandbox) -> None:
    sandbox.state.technique_delays["qr-code-generator"] = 30.0
    async with Toolkit(settings_for(sandbox, max_wait=60.0)) as toolkit:
        results: list[Any] = []
        submitted = anyio.Event()

        async def progress(percent: float, message: str) -> None:
            if message != "submitting":
                submitted.set()

        async def call() -> None:
            results.append(await toolkit.call("qr-code-generator", {"content": "x"}, progress=progress))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(10):
                await submitted.wait()
            toolkit.runs.stop_waiting()
        with anyio.fail_after(2):
            later = await toolkit.call("qr-code-generator", {"content": "y"})
    assert results[0].status in ("pending", "running") and results[0].run_id
    assert later.status in ("pending", "running") and later.run_id  # a call after the stop is submitted, not waited for


def serve_subprocess(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flora_mcp", *args], env={**CLEAN_ENV, **env},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def wait_for_url(proc: subprocess.Popen[str], lines: list[str]) -> str:
    """Read the server's stderr until it says where it listens; keep every line."""
    assert proc.stderr is not None
    stream = proc.stderr

    def read_until_url() -> str:
        for line in stream:
            lines.append(line)
            found = re.search(r"listening on (http://[^/\s]+)", line)
            if found:
                return found.group(1)
        raise AssertionError("server exited: " + "".join(lines))

    with anyio.fail_after(20):
        return await anyio.to_thread.run_sync(read_until_url)


@pytest.mark.anyio
async def test_sigterm_mid_call_returns_the_run_id_and_exits_in_bound() -> None:
    async with serve_sandbox(sandbox_config(technique_delays={"qr-code-generator": 60.0})) as box:
        proc = serve_subprocess("--transport", "http", "--port", "0", env={
            "FLORA_API_KEY": TEST_KEY, "FLORA_BASE_URL": box.base_url, "FLORA_MCP_TOKENS": TOKEN,
            "FLORA_JOURNAL": ":memory:", "FLORA_CATALOG_CACHE": "off", "FLORA_POLL_INTERVAL": "0.2",
            "FLORA_MAX_WAIT": "50"})
        lines: list[str] = []
        try:
            url = await wait_for_url(proc, lines)
            async with create_mcp_http_client(headers=bearer(TOKEN)) as http, \
                    streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                # The client checks results against the tools' output schemas: have them before the server goes.
                await session.list_tools()
                submitted = anyio.Event()

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message and message != "submitting":
                        submitted.set()

                signalled: list[float] = []

                async def terminate_once_submitted() -> None:
                    with anyio.fail_after(20):
                        await submitted.wait()
                    # Twice, as supervisors that signal the whole process group do: still a graceful drain.
                    proc.send_signal(signal.SIGTERM)
                    proc.send_signal(signal.SIGTERM)
                    signalled.append(anyio.current_time())

                async with anyio.create_task_group() as tg:
                    tg.start_soon(terminate_once_submitted)
                    with anyio.fail_after(15):
                        result = await session.call_tool("qr-code-generator", {"content": "sigterm"},
                                                         progress_callback=on_progress)
                returned = anyio.current_time() - signalled[0]
            data = data_of(result)
            assert data["status"] in ("pending", "running") and data["run_id"] == box.runs[0].run_id
            assert "flora_get_run" in (data.get("next_step") or "")
            assert returned < 3  # the call stopped waiting at once, though the run goes on for a minute
            code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=15))
            assert code == 0
            assert anyio.current_time() - signalled[0] < DRAIN_TIMEOUT
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            rest = proc.stderr.read() if proc.stderr else ""
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        assert TEST_KEY not in "".join(lines) + rest and TOKEN not in "".join(lines) + rest


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_binding_all_interfaces_without_auth_is_refused_in_one_line(transport: str) -> None:
    env = {**CLEAN_ENV, "FLORA_API_KEY": TEST_KEY, "FLORA_JOURNAL": ":memory:"}
    done = subprocess.run([sys.executable, "-m", "flora_mcp", "--transport", transport, "--host", "0.0.0.0",
                           "--port", "0"], env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refusing to serve on 0.0.0.0 without auth" in lines[0] and "FLORA_MCP_TOKENS" in lines[0]
    assert TEST_KEY not in done.stderr
