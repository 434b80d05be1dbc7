"""Signing in to hosted flora-mcp with the `mcp` SDK's own OAuth clients against a real authorization server, through
the whole discovery chain (401 -> protected resource metadata -> authorization server metadata -> token), each ending
in a real technique call on the sandbox; refresh after expiry; two people at once, each seeing only their own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from flora_mcp.sandbox import Sandbox
from tests.hosted.hosted_support import data_of, hosted
from tests.hosted.oauth_support import (
    M2M_SHORT,
    SCOPE,
    AuthorizationServer,
    MemoryStorage,
    ScriptedBrowser,
    machine_client,
    oauth_settings,
    person_client,
    signed_in,
)

pytestmark = [pytest.mark.oauth, pytest.mark.anyio]


async def qr(client: Client, content: str) -> dict[str, Any]:
    return data_of(await client.call_tool("qr-code-generator", {"content": content}))


async def test_a_machine_signs_in_with_client_credentials_and_runs_a_technique(
        sandbox: Sandbox, auth_server: AuthorizationServer, tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite3"
    async with hosted(oauth_settings(sandbox, auth_server.issuer, journal=str(journal))) as server:
        url = f"{server.url}/mcp"
        storage = MemoryStorage()
        async with signed_in(url, machine_client(url, auth_server.issuer, storage=storage)) as client:
            ran = await qr(client, "from a machine")
        assert ran["status"] == "completed" and ran["charged_cost"] == 0.01 and ran["outputs"]
        assert storage.tokens is not None and SCOPE in (storage.tokens.scope or "")
    with sqlite3.connect(journal) as db:
        (account,) = db.execute("SELECT account FROM runs WHERE run_id = ?", (ran["run_id"],)).fetchone()
    assert account.endswith(f"/oauth:m2m@{auth_server.issuer}")


async def test_a_person_signs_in_with_pkce_after_registering_the_client_and_runs_a_technique(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer)) as server:
        url = f"{server.url}/mcp"
        browser, storage = ScriptedBrowser("alice"), MemoryStorage()
        async with signed_in(url, person_client(url, browser, storage)) as client:
            ran = await qr(client, "from a person")
            assert ran["status"] == "completed" and ran["outputs"]
            listed = data_of(await client.call_tool("flora_list_runs", {}))["data"]["runs"]
            assert [r["run_id"] for r in listed] == [ran["run_id"]]
        assert len(browser.visits) == 1
        authorize = browser.visits[0]
        assert authorize.startswith(f"{auth_server.issuer}/auth?") and "code_challenge_method=S256" in authorize
        assert "resource=http" in authorize  # RFC 8707: the token is asked for this server
        assert storage.info is not None and storage.info.client_id  # registered dynamically (RFC 7591)
        assert storage.tokens is not None and storage.tokens.refresh_token


async def test_a_machine_gets_a_new_token_after_expiry_and_goes_on(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer, oauth_leeway=0.0)) as server:
        url = f"{server.url}/mcp"
        storage = MemoryStorage()
        async with signed_in(url, machine_client(url, auth_server.issuer, M2M_SHORT, storage)) as client:
            assert (await qr(client, "before expiry"))["status"] == "completed"
            await anyio.sleep(1.5)  # m2m-short's tokens live 1 s
            assert (await qr(client, "after expiry"))["status"] == "completed"
        assert len(storage.history) >= 2 and storage.history[0].access_token != storage.history[-1].access_token


async def test_a_person_is_refreshed_after_expiry_without_signing_in_again(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer, oauth_leeway=0.0)) as server:
        url = f"{server.url}/mcp"
        browser, storage = ScriptedBrowser("carol"), MemoryStorage()
        # A client registered as "short-lived" gets 2 s access tokens from provider.mjs.
        async with signed_in(url, person_client(url, browser, storage, client_name="short-lived")) as client:
            first = await qr(client, "before expiry")
            assert storage.tokens is not None and storage.tokens.expires_in == 2
            await anyio.sleep(2.5)
            second = await qr(client, "after expiry")
            mine = data_of(await client.call_tool("flora_list_runs", {}))["data"]["runs"]
        assert first["status"] == second["status"] == "completed"
        assert len(browser.visits) == 1  # refreshed with the refresh token, not signed in again
        assert len({t.access_token for t in storage.history}) >= 2
        assert {r["run_id"] for r in mine} == {first["run_id"], second["run_id"]}  # still the same person


async def test_two_people_run_techniques_at_once_and_each_sees_only_their_own(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    sandbox.state.run_delay = 0.5  # the runs overlap
    async with hosted(oauth_settings(sandbox, auth_server.issuer)) as server:
        url = f"{server.url}/mcp"
        seen: dict[str, dict[str, Any]] = {}
        both_ran = anyio.Event()

        async def person(name: str, runs: int) -> None:
            async with signed_in(url, person_client(url, ScriptedBrowser(name))) as client:
                results: list[dict[str, Any]] = []
                async with anyio.create_task_group() as tg:
                    async def one(n: int) -> None:
                        results.append(await qr(client, f"{name} {n}"))

                    for n in range(runs):
                        tg.start_soon(one, n)
                seen[name] = {"ran": results,
                              "listed": data_of(await client.call_tool("flora_list_runs", {}))["data"]["runs"],
                              "spend": data_of(await client.call_tool("flora_spend", {})),
                              "resources": {str(r.uri) for r in (await client.list_resources()).resources}}
                if len(seen) == 2:
                    both_ran.set()
                with anyio.fail_after(30):  # still signed in: try the other's run
                    await both_ran.wait()
                stolen = seen["bob" if name == "alice" else "alice"]["ran"][0]["run_id"]
                seen[name]["stolen"] = data_of(await client.call_tool("flora_get_run", {"run_id": stolen}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(person, "alice", 2)
            tg.start_soon(person, "bob", 1)

    assert len(sandbox.runs) == 3
    for name, runs in (("alice", 2), ("bob", 1)):
        mine = {r["run_id"] for r in seen[name]["ran"]}
        assert len(mine) == runs and all(r["status"] == "completed" for r in seen[name]["ran"])
        assert {r["run_id"] for r in seen[name]["listed"]} == mine
        assert seen[name]["spend"]["session_spend"] == round(0.01 * runs, 6)
        assert seen[name]["resources"] == {"flora://spend", *(f"flora://runs/{run_id}" for run_id in mine)}
        assert seen[name]["stolen"]["error_code"] == "run_not_found"
