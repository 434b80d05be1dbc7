"""Hosted quotas: sessions per principal and in all, refused keys remembered, and bearer tokens compared whole.

Real uvicorn on loopback with the sandbox as FLORA; the sandbox's request log counts what reached FLORA.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client

from flora_mcp.api.errors import AuthenticationError
from flora_mcp.core.runs import account_id
from flora_mcp.hosted import AuthPolicy, HostedServer
from flora_mcp.hosted._auth import AuthFailure, Caller
from flora_mcp.hosted._limits import QuotaRefusal, RefusalCache, Reservation, SessionQuota
from flora_mcp.sandbox import Account, Sandbox, serve_sandbox
from tests.hosted.hosted_support import MCP_HEADERS, TOKEN, bearer, hosted, token_settings
from tests.hosted.hosted_support import raw_initialize as initialize
from tests.support import TEST_KEY, sandbox_config, settings_for

OTHER_TOKEN = "other-token-abcdef"
OTHER_KEY = "sk_live_QUOTA0other0user0key0000"
BAD_KEY = "sk_live_NOT0a0key0flora0knows0000"


async def delete(server: HostedServer, headers: dict[str, str], session_id: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.delete(f"{server.url}/mcp", headers={**MCP_HEADERS, **headers,
                                                               "mcp-session-id": session_id})


@asynccontextmanager
async def two_user_sandbox() -> AsyncIterator[Sandbox]:
    keys = {TEST_KEY: Account(techniques=["qr-code-generator"]), OTHER_KEY: Account(techniques=["split-text"])}
    async with serve_sandbox(sandbox_config(keys=keys)) as box:
        yield box


# Sessions per principal and in all -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_principal_at_its_cap_gets_429_naming_the_cap_and_others_still_get_sessions(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox, max_sessions_per_principal=2)) as server:
        opened = [await initialize(server, bearer(TOKEN)) for _ in range(2)]
        assert [r.status_code for r in opened] == [200, 200]
        refused = await initialize(server, bearer(TOKEN))
        assert refused.status_code == 429 and refused.headers["Retry-After"]
        body = refused.json()
        assert body["error"] == "too_many_sessions"
        assert "FLORA_MAX_SESSIONS_PER_PRINCIPAL=2" in body["error_description"]
        assert "2 open MCP sessions" in body["error_description"]
        assert (await initialize(server, bearer(OTHER_TOKEN))).status_code == 200
        assert server.hosted.quota.open_sessions() == 3
        # Closing one session frees its slot at once.
        session_id = opened[0].headers["mcp-session-id"]
        assert (await delete(server, bearer(TOKEN), session_id)).status_code in (200, 204)
        assert server.hosted.quota.open_sessions() == 2
        assert (await initialize(server, bearer(TOKEN))).status_code == 200


@pytest.mark.anyio
async def test_a_request_that_opens_no_session_gives_its_slot_back(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox, max_sessions_per_principal=1)) as server, \
            httpx.AsyncClient(timeout=10) as http:
        not_initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for _ in range(3):
            answer = await http.post(f"{server.url}/mcp", json=not_initialize,
                                     headers={**MCP_HEADERS, **bearer(TOKEN)})
            assert answer.status_code == 400
        assert server.hosted.quota.open_sessions() == 0
        assert (await initialize(server, bearer(TOKEN))).status_code == 200


@pytest.mark.anyio
async def test_an_open_sse_session_counts_against_the_same_cap(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox, max_sessions_per_principal=1)) as server:
        async with sse_client(f"{server.url}/sse", headers=bearer(TOKEN)) as (read, write), \
                ClientSession(read, write) as session:
            with anyio.fail_after(10):
                await session.initialize()
            refused = await initialize(server, bearer(TOKEN))
            assert refused.status_code == 429, refused.text
        with anyio.fail_after(10):
            while server.hosted.quota.open_sessions():
                await anyio.sleep(0.01)
        assert (await initialize(server, bearer(TOKEN))).status_code == 200


@pytest.mark.anyio
async def test_a_full_server_answers_503_naming_its_limit(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox, max_sessions=2)) as server:
        assert (await initialize(server, bearer(TOKEN))).status_code == 200
        assert (await initialize(server, bearer(OTHER_TOKEN))).status_code == 200
        full = await initialize(server, bearer(OTHER_TOKEN))
        assert full.status_code == 503 and full.headers["Retry-After"]
        assert full.json()["error"] == "server_full"
        assert "FLORA_MAX_SESSIONS=2" in full.json()["error_description"]


@pytest.mark.anyio
async def test_with_per_user_keys_each_key_is_a_principal_with_its_own_cap() -> None:
    async with two_user_sandbox() as box, \
            hosted(settings_for(box, api_key=None, max_sessions_per_principal=1), per_user_keys=True) as server:
        assert (await initialize(server, bearer(TEST_KEY))).status_code == 200
        refused = await initialize(server, {"X-Flora-Api-Key": TEST_KEY})
        assert refused.status_code == 429
        assert (await initialize(server, bearer(OTHER_KEY))).status_code == 200


def test_the_quota_counts_each_slot_once_however_it_ends() -> None:
    quota = SessionQuota(max_sessions=3, max_per_principal=2)
    first, second = quota.reserve("alice"), quota.reserve("alice")
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    refused = quota.reserve("alice")
    assert isinstance(refused, QuotaRefusal) and refused.status_code == 429
    assert isinstance(quota.reserve("anyone", per_principal=False), Reservation)
    full = quota.reserve("bob")
    assert isinstance(full, QuotaRefusal) and full.status_code == 503
    quota.bind(first, "s1")
    quota.end_session("s1")
    quota.end_session("s1")
    quota.release(first)
    quota.release(second)
    quota.release(second)
    assert quota.open_sessions("alice") == 0 and quota.open_sessions() == 1


# A key FLORA refused costs FLORA one request a minute, not one per attempt -------------------------------------------


def _technique_lists(box: Sandbox, key: str) -> int:
    return sum(1 for r in box.requests_for("list_techniques") if r.api_key == key)


@pytest.mark.anyio
async def test_a_refused_key_is_refused_again_without_asking_flora_until_the_refusal_expires() -> None:
    now = [1000.0]
    async with two_user_sandbox() as box, \
            hosted(settings_for(box, api_key=None), per_user_keys=True) as server:
        server.pool.refusals = RefusalCache(ttl=60.0, clock=lambda: now[0])
        answers = [await initialize(server, bearer(BAD_KEY)) for _ in range(5)]
        assert {a.status_code for a in answers} == {401}
        assert all('error="invalid_token"' in a.headers["WWW-Authenticate"] for a in answers)
        assert _technique_lists(box, BAD_KEY) == 1
        # Concurrent attempts share the one request too.
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(initialize, server, bearer(BAD_KEY))
        assert _technique_lists(box, BAD_KEY) == 1
        # Remembered by a hash of the key, never the key.
        assert len(server.pool.refusals) == 1
        assert server.pool.refusals.get(account_id(box.base_url, BAD_KEY)) is not None
        assert BAD_KEY not in repr(server.pool.refusals._entries)
        # A good key is unaffected, and is never remembered as refused.
        assert (await initialize(server, bearer(TEST_KEY))).status_code == 200
        assert len(server.pool.refusals) == 1
        now[0] += 61.0
        assert (await initialize(server, bearer(BAD_KEY))).status_code == 401
        assert _technique_lists(box, BAD_KEY) == 2


def test_the_refusal_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    cache = RefusalCache(ttl=60.0, max_entries=3, clock=lambda: now[0])
    error = AuthenticationError("FLORA refused this key", status_code=401, code="invalid_api_key")
    for n in range(5):
        cache.add(f"account-{n}", error)
    assert len(cache) == 3 and cache.get("account-0") is None and cache.get("account-4") is not None
    again = cache.get("account-4")
    assert isinstance(again, AuthenticationError) and again is not error and again.status_code == 401
    now[0] = 60.0
    assert cache.get("account-4") is None


# Bearer tokens: compared whole, in constant time ---------------------------------------------------------------------


@pytest.mark.parametrize("candidate", [TOKEN[:-1], TOKEN[:8], TOKEN + "x", TOKEN.upper(), " " + TOKEN[1:], ""],
                         ids=["one-short", "prefix", "one-long", "case", "first-char", "empty"])
@pytest.mark.anyio
async def test_a_truncated_or_altered_bearer_token_is_refused(candidate: str) -> None:
    policy = AuthPolicy([OTHER_TOKEN, TOKEN], per_user_keys=False, base_url="http://flora")
    refused = await policy.authenticate({"authorization": f"Bearer {candidate}"})
    assert isinstance(refused, AuthFailure)
    assert isinstance(await policy.authenticate({"authorization": f"Bearer {TOKEN}"}), Caller)


@pytest.mark.anyio
async def test_tokens_are_compared_with_compare_digest_against_every_token_matched_or_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    policy = AuthPolicy([TOKEN, OTHER_TOKEN, "third-token-abcdef"], per_user_keys=False, base_url="http://flora")
    for candidate in (TOKEN, TOKEN[:-1], "unrelated-token-123"):
        calls.clear()
        await policy.authenticate({"authorization": f"Bearer {candidate}"})
        assert [given for given, _ in calls] == [candidate.encode()] * 3


@pytest.mark.anyio
async def test_over_http_a_prefix_of_a_valid_token_gets_401(sandbox: Sandbox) -> None:
    async with hosted(token_settings(sandbox)) as server:
        refused = await initialize(server, bearer(TOKEN[:-4]))
        assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
        assert (await initialize(server, bearer(TOKEN))).status_code == 200
