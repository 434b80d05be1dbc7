"""AuthPolicy under OAuth against a real authorization server: the principal a token admits, and the status, error
and words of each refusal (the token checks themselves are in test_oauth_tokens.py)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from flora_mcp.hosted import AuthPolicy
from flora_mcp.hosted._auth import AuthFailure, Caller, StaticToken
from flora_mcp.hosted._oauth import OAuthResource, TokenChecker
from tests.hosted.oauth_support import M2M_SHORT, OTHER_RESOURCE, SCOPE, AuthorizationServer

pytestmark = [pytest.mark.oauth, pytest.mark.anyio]

RESOURCE = "http://127.0.0.1:8123/mcp"
STATIC = "tok-static-beside-oauth-01"


def resource(issuer: str) -> OAuthResource:
    return OAuthResource(issuer=issuer, resource=RESOURCE, scopes=(SCOPE,), token_types=frozenset({"at+jwt"}),
                         leeway=0.0)


@pytest.fixture
async def policy(auth_server: AuthorizationServer) -> AsyncIterator[AuthPolicy]:
    checker = TokenChecker(resource(auth_server.issuer))
    try:
        yield AuthPolicy([STATIC], per_user_keys=False, base_url="http://flora", oauth=checker)
    finally:
        await checker.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_access_token_admits_its_subject_at_its_issuer(policy: AuthPolicy,
                                                                auth_server: AuthorizationServer) -> None:
    caller = await policy.authenticate(bearer(auth_server.token(resource=RESOURCE)))
    assert caller == Caller(f"oauth:m2m@{auth_server.issuer}")
    # A static token still admits its holder beside OAuth.
    assert await policy.authenticate(bearer(STATIC)) == Caller(StaticToken(STATIC).principal)


async def test_a_token_without_the_scope_is_forbidden_and_logged_by_principal(
        policy: AuthPolicy, auth_server: AuthorizationServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flora_mcp.hosted.auth"):
        failure = await policy.authenticate(bearer(auth_server.token(resource=RESOURCE, scope=None)))
    assert failure == AuthFailure(f"The access token lacks the scope {SCOPE}.", error="insufficient_scope",
                                  status_code=403)
    assert [r.getMessage() for r in caplog.records if r.name == "flora_mcp.hosted.auth"] == [
        f"refused an access token of oauth:m2m@{auth_server.issuer} without the scope {SCOPE}"]


async def test_a_token_for_another_resource_is_not_valid_here_and_the_reason_is_logged(
        policy: AuthPolicy, auth_server: AuthorizationServer, caplog: pytest.LogCaptureFixture) -> None:
    token = auth_server.token(resource=OTHER_RESOURCE)
    with caplog.at_level(logging.INFO, logger="flora_mcp.hosted.auth"):
        failure = await policy.authenticate(bearer(token))
    assert failure == AuthFailure("The access token is not valid for this server.")
    [message] = [r.getMessage() for r in caplog.records if r.name == "flora_mcp.hosted.auth"]
    assert message.startswith("refused an access token: ") and "audience" in message and token not in message


async def test_an_expired_token_is_told_so(policy: AuthPolicy, auth_server: AuthorizationServer) -> None:
    token = auth_server.token(M2M_SHORT, resource=RESOURCE)  # lives 1 s
    with anyio.fail_after(10):
        while time.time() <= jwt.decode(token, options={"verify_signature": False})["exp"] + 0.5:
            await anyio.sleep(0.1)
    assert await policy.authenticate(bearer(token)) == AuthFailure("The access token has expired.")


async def test_an_issuer_that_cannot_be_reached_is_a_503_to_retry_not_a_bad_token() -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"
    claims = {"iss": issuer, "aud": RESOURCE, "sub": "m2m", "scope": SCOPE, "exp": int(time.time()) + 60}
    token = jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256",
                       headers={"typ": "at+jwt", "kid": "k1"})  # its keys would have to be fetched from the issuer
    checker = TokenChecker(resource(issuer))
    try:
        policy = AuthPolicy([], per_user_keys=False, base_url="http://flora", oauth=checker)
        failure = await policy.authenticate(bearer(token))
    finally:
        await checker.aclose()
    assert failure == AuthFailure("The authorization server cannot be reached to check the token; try again shortly.",
                                  error="temporarily_unavailable", status_code=503)
