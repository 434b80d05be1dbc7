"""Hosted flora-mcp as an OAuth resource server, over real HTTP: its protected resource metadata, and the answers to
requests without a token, with an expired one, a forged one, one for another API or issuer, or one without the scope.
"""

from __future__ import annotations

import logging
import time

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from flora_mcp.config import ConfigurationError, Settings
from flora_mcp.hosted import HostedOptions
from flora_mcp.hosted._serve import oauth_resource
from flora_mcp.sandbox import Sandbox
from tests.hosted.hosted_support import TOKEN, bearer, hosted, raw_initialize
from tests.hosted.oauth_support import (
    M2M_SHORT,
    OTHER_RESOURCE,
    SCOPE,
    AuthorizationServer,
    authorization_server,
    oauth_settings,
)

pytestmark = pytest.mark.oauth


@pytest.mark.anyio
async def test_the_metadata_names_the_resource_the_issuer_and_the_scope_at_both_well_known_forms(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer)) as server, httpx.AsyncClient() as http:
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            answer = await http.get(f"{server.url}{path}")  # no token, no particular Host needed
            assert answer.status_code == 200, path
            assert answer.json() == {"resource": f"{server.url}/mcp", "authorization_servers": [auth_server.issuer],
                                     "scopes_supported": [SCOPE], "bearer_methods_supported": ["header"],
                                     "resource_name": "flora-mcp"}


@pytest.mark.anyio
async def test_without_a_token_the_401_points_to_the_metadata_and_names_the_scope(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer)) as server:
        refused = await raw_initialize(server, {})
        assert refused.status_code == 401
        challenge = refused.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ") and "error=" not in challenge  # RFC 6750 3.1: no credentials, no error
        assert f'resource_metadata="{server.url}/.well-known/oauth-protected-resource/mcp"' in challenge
        assert f'scope="{SCOPE}"' in challenge


@pytest.mark.anyio
async def test_an_expired_token_gets_invalid_token_so_the_client_refreshes(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer, oauth_leeway=0.0)) as server:
        token = auth_server.token(M2M_SHORT, resource=f"{server.url}/mcp")
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        accepted = (await raw_initialize(server, bearer(token))).status_code
        # The token lives a second or two: on a loaded machine the first request may itself arrive after exp.
        assert accepted == 200 or time.time() > exp, accepted
        with anyio.fail_after(10):
            while time.time() <= exp + 0.5:
                await anyio.sleep(0.1)
        refused = await raw_initialize(server, bearer(token))
        assert refused.status_code == 401
        assert 'error="invalid_token", error_description="The access token has expired."' in (
            refused.headers["WWW-Authenticate"])
        assert "resource_metadata=" in refused.headers["WWW-Authenticate"]


@pytest.mark.anyio
async def test_forged_misdirected_and_foreign_tokens_get_one_answer_and_the_log_says_why(
        sandbox: Sandbox, auth_server: AuthorizationServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flora_mcp.hosted")
    async with hosted(oauth_settings(sandbox, auth_server.issuer)) as server:
        resource = f"{server.url}/mcp"
        genuine = auth_server.token(resource=resource)
        claims = jwt.decode(genuine, options={"verify_signature": False})
        forged = jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256",
                            headers={"typ": "at+jwt", "kid": jwt.get_unverified_header(genuine)["kid"]})
        with authorization_server() as second:
            tokens = {"forged": forged, "another API": auth_server.token(resource=OTHER_RESOURCE),
                      "another issuer": second.token(resource=resource)}
            answers = {why: await raw_initialize(server, bearer(token)) for why, token in tokens.items()}
        for why, answer in answers.items():
            assert answer.status_code == 401, why
            assert answer.json() == {"error": "invalid_token",
                                     "error_description": "The access token is not valid for this server."}, why
        assert len({a.headers["WWW-Authenticate"] for a in answers.values()}) == 1  # nothing tells them apart
        assert (await raw_initialize(server, bearer(genuine))).status_code == 200
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "Signature verification failed" in log and "is not this resource" in log
    assert "not the configured issuer" in log
    assert not any(token in log for token in (*tokens.values(), genuine))


@pytest.mark.anyio
async def test_a_token_without_the_scope_gets_403_insufficient_scope(
        sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    async with hosted(oauth_settings(sandbox, auth_server.issuer)) as server:
        token = auth_server.token(resource=f"{server.url}/mcp", scope=None)  # a token with no scope claim
        refused = await raw_initialize(server, bearer(token))
        assert refused.status_code == 403
        assert refused.json()["error"] == "insufficient_scope" and SCOPE in refused.json()["error_description"]
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
        assert f'scope="{SCOPE}"' in refused.headers["WWW-Authenticate"]


@pytest.mark.anyio
async def test_static_tokens_still_admit_beside_oauth(sandbox: Sandbox, auth_server: AuthorizationServer) -> None:
    settings = oauth_settings(sandbox, auth_server.issuer, mcp_tokens=SecretStr(f"ci:{TOKEN}"))
    async with hosted(settings) as server:
        assert (await raw_initialize(server, bearer(TOKEN))).status_code == 200
        assert (await raw_initialize(server, bearer(TOKEN[:-1]))).status_code == 401


@pytest.mark.anyio
async def test_an_unreachable_issuer_answers_503_not_401(sandbox: Sandbox) -> None:
    with authorization_server() as stopped:
        issuer = stopped.issuer
    async with hosted(oauth_settings(sandbox, issuer)) as server:
        refused = await raw_initialize(server, bearer("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"))
        assert refused.status_code == 401  # not a token of this issuer: refused without fetching anything
        fake = jwt.encode({"iss": issuer, "aud": f"{server.url}/mcp", "exp": time.time() + 60},
                          rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256",
                          headers={"typ": "at+jwt"})
        unavailable = await raw_initialize(server, bearer(fake))
        assert unavailable.status_code == 503 and unavailable.json()["error"] == "temporarily_unavailable"
        assert unavailable.headers["Retry-After"]


def test_the_resource_url_comes_from_public_url_and_off_loopback_it_is_required() -> None:
    settings = Settings(oauth_issuer="https://idp.example.com/realms/acme")
    public = oauth_resource(settings.model_copy(update={"public_url": "https://flora.example.com"}),
                            HostedOptions(host="0.0.0.0"), 8000)
    assert public.resource == "https://flora.example.com/mcp"
    assert public.metadata_url == "https://flora.example.com/.well-known/oauth-protected-resource/mcp"
    assert oauth_resource(settings, HostedOptions(host="127.0.0.1"), 8123).resource == "http://127.0.0.1:8123/mcp"
    with pytest.raises(ConfigurationError, match="FLORA_PUBLIC_URL is required"):
        oauth_resource(settings, HostedOptions(host="0.0.0.0"), 8000)
    with pytest.raises(ConfigurationError, match="https"):
        oauth_resource(settings.model_copy(update={"oauth_issuer": "http://idp.example.com"}),
                       HostedOptions(host="127.0.0.1"), 8000)
    with pytest.raises(ConfigurationError, match="no scope"):
        oauth_resource(settings.model_copy(update={"oauth_scopes": " , "}), HostedOptions(host="127.0.0.1"), 8000)
