"""The token checks (`_oauth.TokenChecker`) against a real authorization server: what it accepts, what it refuses and
why, how often it fetches keys, and introspection of opaque tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.server.auth.provider import AccessToken

from flora_mcp.hosted._oauth import JWKS_REFETCH_COOLDOWN, OAuthResource, Rejection, TokenChecker
from tests.hosted.oauth_support import (
    M2M_OPAQUE,
    M2M_SHORT,
    OTHER_RESOURCE,
    RESOURCE_SERVER,
    SCOPE,
    AuthorizationServer,
    authorization_server,
)

pytestmark = [pytest.mark.oauth, pytest.mark.anyio]

RESOURCE = "http://127.0.0.1:8123/mcp"


def checker(server: AuthorizationServer, *, types: frozenset[str] | None = frozenset({"at+jwt"}), leeway: float = 0.0,
            introspection: tuple[str, str] | None = None, **kwargs: Any) -> TokenChecker:
    client_id, secret = introspection or (None, None)
    return TokenChecker(OAuthResource(issuer=server.issuer, resource=RESOURCE, scopes=(SCOPE,), token_types=types,
                                      leeway=leeway, client_id=client_id, client_secret=secret), **kwargs)


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def signed_elsewhere(claims: dict[str, Any], **header: Any) -> str:
    """The claims, signed RS256 with a key the issuer never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"typ": "at+jwt", **header})


def hs256_with_public_key(claims: dict[str, Any], server: AuthorizationServer, kid: str) -> str:
    """The old algorithm-confusion attack: HS256 keyed with the issuer's public key, which anyone can fetch."""
    jwk = next(k for k in server.jwks()["keys"] if k["kid"] == kid)
    public = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{part(claims)}"
    signature = base64.urlsafe_b64encode(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature.rstrip(b'=').decode()}"


def unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key=None, algorithm="none", headers={"typ": "at+jwt"})  # type: ignore[arg-type]


async def test_a_token_of_the_issuer_for_this_resource_names_its_subject_and_scopes(
        auth_server: AuthorizationServer) -> None:
    check = checker(auth_server)
    try:
        token = auth_server.token(resource=RESOURCE)
        results = [await check.check(token) for _ in range(5)]
        assert all(isinstance(r, AccessToken) for r in results)
        first = results[0]
        assert isinstance(first, AccessToken)
        assert first.subject == "m2m" and first.scopes == [SCOPE] and first.resource == RESOURCE
        assert (first.claims or {})["iss"] == auth_server.issuer
        assert check.issuer.jwks_fetches == 1  # the keys are cached
        assert await check.verify_token(token) == first  # the SDK's TokenVerifier protocol
    finally:
        await check.aclose()


async def test_a_burst_of_first_requests_fetches_the_keys_once(auth_server: AuthorizationServer) -> None:
    check = checker(auth_server)
    try:
        token = auth_server.token(resource=RESOURCE)
        results: list[object] = []

        async def one() -> None:
            results.append(await check.check(token))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert len(results) == 20 and all(isinstance(r, AccessToken) for r in results)
        assert check.issuer.jwks_fetches == 1
    finally:
        await check.aclose()


async def test_forged_foreign_and_misdirected_tokens_are_refused_each_for_its_reason(
        auth_server: AuthorizationServer) -> None:
    genuine = auth_server.token(resource=RESOURCE)
    claims, kid = claims_of(genuine), kid_of(genuine)
    with authorization_server() as second:
        foreign = second.token(resource=RESOURCE)
        cases = {
            "token audience": auth_server.token(resource=OTHER_RESOURCE),
            "Signature verification failed": signed_elsewhere(claims, kid=kid),
            "no signing key": signed_elsewhere(claims, kid="made-up-kid"),
            "alg 'HS256' is not accepted": hs256_with_public_key(claims, auth_server, kid),
            "alg 'none' is not accepted": unsigned(claims),
            "not the configured issuer": foreign,
            # The second issuer's token, relabelled with the first issuer's name: its key is not the first's.
            "no signing key ": jwt.encode({**claims_of(foreign), "iss": auth_server.issuer},
                                          rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                          algorithm="RS256", headers={"typ": "at+jwt", "kid": kid_of(foreign)}),
        }
        check = checker(auth_server)
        try:
            assert isinstance(await check.check(genuine), AccessToken)
            for reason, token in cases.items():
                refused = await check.check(token)
                assert isinstance(refused, Rejection) and refused.reason == "invalid", (reason, refused)
                assert reason.strip() in refused.detail and token not in refused.detail
        finally:
            await check.aclose()


async def test_an_expired_token_is_told_apart_and_the_leeway_is_honoured(auth_server: AuthorizationServer) -> None:
    token = auth_server.token(M2M_SHORT, resource=RESOURCE)  # lives 1 s
    strict, lenient = checker(auth_server, leeway=0.0), checker(auth_server, leeway=30.0)
    try:
        with anyio.fail_after(10):
            while time.time() <= claims_of(token)["exp"] + 0.5:
                await anyio.sleep(0.1)
        expired = await strict.check(token)
        assert isinstance(expired, Rejection) and expired.reason == "expired"
        assert isinstance(await lenient.check(token), AccessToken)
    finally:
        await strict.aclose()
        await lenient.aclose()


async def test_the_typ_check_follows_the_setting(auth_server: AuthorizationServer) -> None:
    token = auth_server.token(resource=RESOURCE)  # typ at+jwt
    only_jwt, anything = checker(auth_server, types=frozenset({"jwt"})), checker(auth_server, types=None)
    try:
        refused = await only_jwt.check(token)
        assert isinstance(refused, Rejection) and "typ 'at+jwt'" in refused.detail
        assert isinstance(await anything.check(token), AccessToken)
    finally:
        await only_jwt.aclose()
        await anything.aclose()


async def test_unknown_kids_fetch_the_keys_again_at_most_once_per_cooldown(auth_server: AuthorizationServer) -> None:
    now = [time.time()]
    check = checker(auth_server, clock=lambda: now[0])
    try:
        claims = claims_of(auth_server.token(resource=RESOURCE))
        for n in range(5):
            assert isinstance(await check.check(signed_elsewhere(claims, kid=f"unknown-{n}")), Rejection)
        assert check.issuer.jwks_fetches == 1
        now[0] += JWKS_REFETCH_COOLDOWN + 1
        assert isinstance(await check.check(signed_elsewhere(claims, kid="unknown-later")), Rejection)
        assert check.issuer.jwks_fetches == 2
    finally:
        await check.aclose()


async def test_opaque_tokens_are_introspected_with_the_servers_own_credentials(
        auth_server: AuthorizationServer) -> None:
    opaque = auth_server.token(M2M_OPAQUE, resource=RESOURCE)
    assert opaque.count(".") != 2  # not a JWT
    with_credentials, without = checker(auth_server, introspection=RESOURCE_SERVER), checker(auth_server)
    try:
        admitted = await with_credentials.check(opaque)
        assert isinstance(admitted, AccessToken) and admitted.subject == "m2m-opaque" and admitted.scopes == [SCOPE]
        elsewhere = await with_credentials.check(auth_server.token(M2M_OPAQUE, resource=OTHER_RESOURCE))
        assert isinstance(elsewhere, Rejection) and "audience" in elsewhere.detail
        made_up = await with_credentials.check("not-a-token-the-issuer-ever-issued")
        assert isinstance(made_up, Rejection) and "not active" in made_up.detail
        no_introspection = await without.check(opaque)
        assert isinstance(no_introspection, Rejection) and "FLORA_OAUTH_CLIENT_ID" in no_introspection.detail
    finally:
        await with_credentials.aclose()
        await without.aclose()


async def test_an_unreachable_issuer_is_unavailable_not_invalid() -> None:
    with authorization_server() as server:
        token = server.token(resource=RESOURCE)
        check = checker(server)
    try:  # the server has stopped: neither its metadata nor its keys can be fetched
        refused = await check.check(token)
        assert isinstance(refused, Rejection) and refused.reason == "unavailable"
    finally:
        await check.aclose()
